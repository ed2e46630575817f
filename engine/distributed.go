package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/mlx-genkit/genkit/mlx"
)

// Tensor parallelism's process group for the front ends, which do not call
// MLX themselves (see docs/distributed.md).

// DistGroup is the group of processes (ranks) a genkit runs in.
type DistGroup = mlx.Group

// Environment variables genkit launch sets for each rank.
const (
	EnvDistRank     = mlx.EnvRank        // MLX_RANK
	EnvDistHostfile = mlx.EnvHostfile    // MLX_HOSTFILE (ring)
	EnvDistWorld    = mlx.EnvWorldSize   // MLX_WORLD_SIZE (nccl)
	EnvNCCLHostIP   = mlx.EnvNCCLHostIP  // NCCL_HOST_IP
	EnvNCCLPort     = mlx.EnvNCCLPort    // NCCL_PORT
	EnvDistBackend  = mlx.EnvBackend     // GENKIT_DIST_BACKEND
	EnvDistTimeout  = mlx.EnvInitTimeout // GENKIT_DIST_TIMEOUT
)

// Distributed backends.
const (
	DistRing = mlx.BackendRing
	DistNCCL = mlx.BackendNCCL
	DistAny  = mlx.BackendAny
)

// DefaultDistTimeout is how long a rank waits for its peers by default.
const DefaultDistTimeout = mlx.DefaultInitTimeout

// InitDistributed joins the group the environment describes
// (GENKIT_DIST_BACKEND and MLX's variables, as genkit launch sets them); nil
// and no error when the process is not distributed.
func InitDistributed(ctx context.Context) (*DistGroup, error) { return mlx.InitFromEnv(ctx) }

// SingleGroup is a group of this process alone (collectives are identities).
func SingleGroup(ctx context.Context) (*DistGroup, error) {
	return mlx.InitGroup(ctx, mlx.BackendAny, false)
}

// DistributedAvailable reports whether the linked MLX has the backend.
func DistributedAvailable(backend string) (bool, error) { return mlx.DistributedAvailable(backend) }

// LoopbackRing returns a ring hostfile (JSON) for n ranks on free loopback
// ports.
func LoopbackRing(n int) ([]byte, error) {
	addrs, err := mlx.FreeLoopbackAddrs(n)
	if err != nil {
		return nil, err
	}
	return mlx.RingHostfile(addrs)
}

// FreeLoopbackPort is a loopback TCP port free a moment ago.
func FreeLoopbackPort() (int, error) {
	addrs, err := mlx.FreeLoopbackAddrs(1)
	if err != nil {
		return 0, err
	}
	var port int
	if _, err := fmt.Sscanf(addrs[0], "127.0.0.1:%d", &port); err != nil {
		return 0, fmt.Errorf("free loopback port: %q: %w", addrs[0], err)
	}
	return port, nil
}

// CheckDistributed all-sums rank+1 and all-gathers the rank over g, checks
// the results against the group's size and returns a one-line report.
func CheckDistributed(ctx context.Context, g *DistGroup) (string, error) {
	n, r := g.Size(), g.Rank()
	return mlx.Call(ctx, func() (string, error) {
		s := mlx.NewScope()
		defer s.Close()
		x := s.Track(mlx.Scalar(float64(r+1), mlx.Float32))
		sum := s.Track(mlx.AllSum(x, g))
		xr := s.Track(mlx.FromInt32s([]int32{int32(r)}, 1))
		all := s.Track(mlx.AllGather(xr, g))
		if err := s.Err(); err != nil {
			return "", err
		}
		v, err := sum.Item()
		if err != nil {
			return "", err
		}
		if want := float64(n * (n + 1) / 2); v != want {
			return "", fmt.Errorf("all_sum of rank+1 = %v, want %v", v, want)
		}
		ranks, err := all.Int32s()
		if err != nil {
			return "", err
		}
		for i, got := range ranks {
			if int(got) != i || len(ranks) != n {
				return "", fmt.Errorf("all_gather of ranks = %v, want 0..%d", ranks, n-1)
			}
		}
		if err := mlx.Barrier(g); err != nil {
			return "", err
		}
		return fmt.Sprintf("rank %d of %d (%s): all_sum %v, all_gather %v: ok", r, n, g.Backend(), v, ranks), nil
	})
}

// AllSumLatency is the mean time of an all-sum of a [1, dim] float32 row
// over g, each evaluated before the next (as a decode step's all-sums are),
// after 10 rounds of warm-up.
func AllSumLatency(ctx context.Context, g *DistGroup, iters, dim int) (time.Duration, error) {
	if iters < 1 || dim < 1 {
		return 0, fmt.Errorf("all-sum latency: %d rounds of %d values", iters, dim)
	}
	return mlx.Call(ctx, func() (time.Duration, error) {
		x, err := mlx.Full(1, mlx.Float32, 1, dim)
		if err != nil {
			return 0, err
		}
		defer x.Free()
		round := func() error {
			y, err := mlx.AllSum(x, g)
			if err != nil {
				return err
			}
			defer y.Free()
			return mlx.Eval(y)
		}
		for i := 0; i < 10; i++ {
			if err := round(); err != nil {
				return 0, err
			}
		}
		start := time.Now()
		for i := 0; i < iters; i++ {
			if err := round(); err != nil {
				return 0, err
			}
		}
		return time.Since(start) / time.Duration(iters), nil
	})
}

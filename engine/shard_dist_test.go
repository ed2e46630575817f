package engine

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mlx-genkit/genkit/internal/disttest"
	"github.com/mlx-genkit/genkit/mlx"
)

// shardWorkerEnv makes TestShardMLPWorker play one rank of
// TestShardMLPTwoProcesses.
const shardWorkerEnv = "GENKIT_TEST_SHARD_WORKER"

// TestShardMLPTwoProcesses runs a SwiGLU MLP (gate and up column-parallel,
// down row-parallel with a bias, an all-sum after down) as two processes
// over MLX's ring backend on loopback; each rank checks the all-summed
// output against the unsharded MLP it also computes, to 1e-5, and that every
// rank's all-summed output has the same bits.
func TestShardMLPTwoProcesses(t *testing.T) {
	if os.Getenv(shardWorkerEnv) != "" {
		t.Skip("inside a worker")
	}
	outs := disttest.Run(t, 2, "TestShardMLPWorker", []string{shardWorkerEnv + "=1"}, 90*time.Second)
	for r, out := range outs {
		if !strings.Contains(out, fmt.Sprintf("rank %d: sharded MLP ok", r)) {
			t.Errorf("rank %d did not report its check:\n%s", r, out)
		}
	}
}

// TestShardMLPWorker is one rank of TestShardMLPTwoProcesses.
func TestShardMLPWorker(t *testing.T) {
	if os.Getenv(shardWorkerEnv) == "" {
		t.Skip("run by TestShardMLPTwoProcesses only")
	}
	g, err := mlx.InitFromEnv(context.Background())
	if err == nil && g == nil {
		err = fmt.Errorf("%s is unset", mlx.EnvBackend)
	}
	if err != nil {
		t.Fatal(err)
	}
	const rows, dim, hidden = 3, 16, 24
	// Every rank draws the same weights and input.
	r := rand.New(rand.NewSource(11))
	wg, wu, wd := randFloats(r, hidden*dim), randFloats(r, hidden*dim), randFloats(r, dim*hidden)
	bd, xv := randFloats(r, dim), randFloats(r, rows*dim)
	onMLXThread(t, func() error {
		gate, up, down := denseLinear(t, wg, nil, hidden, dim), denseLinear(t, wu, nil, hidden, dim), denseLinear(t, wd, bd, dim, hidden)
		defer func() { gate.free(); up.free(); down.free() }()
		x, err := mlx.FromFloat32s(xv, rows, dim)
		if err != nil {
			return err
		}
		defer x.Free()
		mlp := func(s *mlx.Scope, gate, up, down *Linear) *mlx.Array {
			a := gate.Apply(s, x)
			h := s.Track(mlx.Multiply(s.Track(mlx.SiLU(a)), up.Apply(s, x)))
			return down.Apply(s, h)
		}
		s := mlx.NewScope()
		defer s.Close()
		full := mlp(s, gate, up, down)
		sg, err := ColumnShard(gate, g.Rank(), g.Size(), 1)
		if err != nil {
			return err
		}
		defer sg.free()
		su, err := ColumnShard(up, g.Rank(), g.Size(), 1)
		if err != nil {
			return err
		}
		defer su.free()
		sd, err := RowShard(down, g.Rank(), g.Size(), 1)
		if err != nil {
			return err
		}
		defer sd.free()
		y := s.Track(mlx.AllSum(mlp(s, sg, su, sd), g))
		if err := s.Err(); err != nil {
			return err
		}
		want, err := full.Float32s()
		if err != nil {
			return err
		}
		got, err := y.Float32s()
		if err != nil {
			return err
		}
		for i := range want {
			if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
				return fmt.Errorf("all-summed MLP[%d] = %v, unsharded %v", i, got[i], want[i])
			}
		}
		// Every rank holds the same bits after the all-sum (what lets each
		// rank sample the same token): gather all ranks' results and compare.
		all := s.Track(mlx.AllGather(s.Track(mlx.ExpandDims(y, 0)), g))
		if err := s.Err(); err != nil {
			return err
		}
		every, err := all.Float32s()
		if err != nil {
			return err
		}
		for rk := 0; rk < g.Size(); rk++ {
			for i, v := range every[rk*len(got) : (rk+1)*len(got)] {
				if math.Float32bits(v) != math.Float32bits(got[i]) {
					return fmt.Errorf("rank %d's all-summed MLP[%d] = %v, this rank's %v: the ranks disagree", rk, i, v, got[i])
				}
			}
		}
		return nil
	})
	dev, _ := mlx.Call(context.Background(), mlx.DefaultDevice)
	fmt.Printf("rank %d: sharded MLP ok (%v, %s)\n", g.Rank(), g, dev)
}

// Package disttest runs a test binary as the ranks of an MLX distributed
// group on this host, for the tests of sharded work: the test re-executes
// itself once per rank, running only its worker test, with the environment
// genkit launch would give the rank.
package disttest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlx-genkit/genkit/mlx"
)

// BackendEnv picks the backend of Run (GENKIT_TEST_TP_BACKEND=nccl runs
// the ranks over NCCL, one GPU each, on a machine with two GPUs); the
// default is the ring backend on loopback, which CI runs.
const BackendEnv = "GENKIT_TEST_TP_BACKEND"

// Backend is the backend Run uses; the test is skipped when the linked
// MLX lacks it.
func Backend(t testing.TB) string {
	t.Helper()
	backend := os.Getenv(BackendEnv)
	if backend == "" {
		backend = mlx.BackendRing
	}
	if ok, err := mlx.DistributedAvailable(backend); err != nil || !ok {
		t.Skipf("MLX's %s backend is not available here (%v)", backend, err)
	}
	return backend
}

// Run starts the running test binary n times, as ranks 0..n-1 of a group
// over Backend, each running only the test named worker (with -test.v)
// with env added to its environment; GENKIT_DIST_BACKEND names the
// backend, so the worker joins with engine.InitDistributed (or
// mlx.InitFromEnv). It waits for every rank, at most limit (then the
// ranks are killed: a hang), and returns their outputs; a rank that fails
// fails t with its output.
func Run(t testing.TB, n int, worker string, env []string, limit time.Duration) []string {
	t.Helper()
	backend := Backend(t)
	addrs, err := mlx.FreeLoopbackAddrs(n + 1)
	if err != nil {
		t.Fatal(err)
	}
	host, err := mlx.RingHostfile(addrs[:n])
	if err != nil {
		t.Fatal(err)
	}
	hosts := filepath.Join(t.TempDir(), "hosts.json")
	if err := os.WriteFile(hosts, host, 0o644); err != nil {
		t.Fatal(err)
	}
	ncclPort := addrs[n][strings.LastIndexByte(addrs[n], ':')+1:]
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	outs := make([]strings.Builder, n)
	cmds := make([]*exec.Cmd, n)
	for r := range cmds {
		c := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+worker+"$", "-test.v", "-test.count=1")
		c.Env = append(os.Environ(), env...)
		c.Env = append(c.Env, mlx.EnvBackend+"="+backend, mlx.EnvRank+"="+strconv.Itoa(r), mlx.EnvHostfile+"="+hosts)
		if backend == mlx.BackendNCCL {
			c.Env = append(c.Env, mlx.EnvWorldSize+"="+strconv.Itoa(n), mlx.EnvNCCLHostIP+"=127.0.0.1", mlx.EnvNCCLPort+"="+ncclPort,
				"CUDA_VISIBLE_DEVICES="+strconv.Itoa(r), "NCCL_NVLS_ENABLE=0")
		}
		// At the limit, SIGQUIT: the Go runtime prints every goroutine's
		// stack (where a hang waits), then the rank is killed.
		c.Cancel = func() error { return c.Process.Signal(syscall.SIGQUIT) }
		c.WaitDelay = 5 * time.Second
		c.Stdout, c.Stderr = &outs[r], &outs[r]
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[r] = c
	}
	failed := false
	for r, c := range cmds {
		if err := c.Wait(); err != nil {
			failed = true
			t.Errorf("rank %d: %v\n%s", r, err, outs[r].String())
		}
	}
	if ctx.Err() != nil {
		t.Errorf("the ranks were killed after %v (a hang)", limit)
	}
	if failed {
		t.FailNow()
	}
	res := make([]string, n)
	for r := range outs {
		res[r] = outs[r].String()
	}
	return res
}

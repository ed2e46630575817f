package mlx_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/mlx"
)

// TestOpsPerGraphDefault: on CUDA MLX sees genkit's ops-per-graph default
// unless the user set the variable, and neither Go's environment nor a child
// process sees genkit's value (peers keep their own defaults); elsewhere
// genkit sets nothing.
func TestOpsPerGraphDefault(t *testing.T) {
	var backend string
	if err := mlx.Do(context.Background(), func() error { backend = mlx.GPUBackend(); return nil }); err != nil {
		t.Fatal(err)
	}
	user, userSet := os.LookupEnv(mlx.EnvOpsPerGraph)
	got := mlx.OpsPerGraph()
	switch {
	case userSet:
		if got != user {
			t.Errorf("MLX sees %s=%q, the user set %q", mlx.EnvOpsPerGraph, got, user)
		}
		return
	case backend == "cuda":
		if got != mlx.CUDAOpsPerGraph {
			t.Errorf("on CUDA MLX sees %s=%q, want genkit's %q", mlx.EnvOpsPerGraph, got, mlx.CUDAOpsPerGraph)
		}
	default:
		if got != "" {
			t.Errorf("on %q MLX sees %s=%q; genkit sets it on CUDA only", backend, mlx.EnvOpsPerGraph, got)
		}
	}
	if _, ok := os.LookupEnv(mlx.EnvOpsPerGraph); ok {
		t.Errorf("genkit's default leaked into Go's environment")
	}
	out, err := exec.Command("env").Output()
	if err != nil {
		t.Skipf("env: %v", err)
	}
	if strings.Contains(string(out), mlx.EnvOpsPerGraph+"=") {
		t.Errorf("a child process sees %s: peers would run with genkit's default", mlx.EnvOpsPerGraph)
	}
}

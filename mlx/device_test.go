package mlx_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/mlx"
)

func TestParseDeviceChoice(t *testing.T) {
	for in, want := range map[string]mlx.DeviceChoice{"": mlx.DeviceAuto, "auto": mlx.DeviceAuto, "GPU": mlx.DeviceGPU, " cpu ": mlx.DeviceCPU} {
		got, err := mlx.ParseDeviceChoice(in)
		if err != nil || got != want {
			t.Errorf("ParseDeviceChoice(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"bogus", "cuda", "metal", "gpu0"} {
		if _, err := mlx.ParseDeviceChoice(bad); err == nil || !strings.Contains(err.Error(), "want auto, gpu or cpu") {
			t.Errorf("ParseDeviceChoice(%q): error %v, want one naming the choices", bad, err)
		}
	}
}

// TestSelectDevice: cpu always works; gpu works exactly when the linked
// backend has a GPU, and otherwise fails naming the cause; the choice in
// force is restored afterwards.
func TestSelectDevice(t *testing.T) {
	prev := mlx.Selected()
	t.Cleanup(func() {
		if _, err := mlx.SelectDevice(prev.Choice); err != nil {
			t.Errorf("restoring %q: %v", prev.Choice, err)
		}
	})
	sel, err := mlx.SelectDevice(mlx.DeviceCPU)
	if err != nil || sel.Device != mlx.CPU {
		t.Fatalf("cpu: %+v, %v", sel, err)
	}
	on(t, func(*mlx.Scope) error {
		d, err := mlx.DefaultDevice()
		if err == nil && d != mlx.CPU {
			t.Errorf("default device %v after choosing the CPU", d)
		}
		return err
	})
	var backend string
	_ = mlx.Do(context.Background(), func() error { backend = mlx.GPUBackend(); return nil })
	sel, err = mlx.SelectDevice(mlx.DeviceGPU)
	switch {
	case backend == "" && (err == nil || !strings.Contains(err.Error(), "CPU-only")):
		t.Errorf("gpu on a CPU-only build: %+v, %v; want an error naming the CPU-only build", sel, err)
	case backend != "" && (err != nil || sel.Device != mlx.GPU):
		t.Errorf("gpu on the %s backend: %+v, %v", backend, sel, err)
	}
	auto, err := mlx.SelectDevice(mlx.DeviceAuto)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[bool]mlx.Device{true: mlx.CPU, false: mlx.GPU}[backend == ""]; auto.Device != want {
		t.Errorf("auto chose %v on backend %q", auto.Device, backend)
	}
}

// TestCompileNotice: shown only on a CUDA GPU with no compiled kernel cached.
func TestCompileNotice(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(mlx.KernelCacheEnv, dir)
	gpu := mlx.Selection{Device: mlx.GPU}
	if n := mlx.CompileNotice(gpu, "cuda"); !strings.Contains(n, "compiling GPU kernels") || !strings.Contains(n, dir) {
		t.Errorf("cold CUDA cache: notice %q", n)
	}
	for _, c := range []struct {
		sel     mlx.Selection
		backend string
	}{{mlx.Selection{Device: mlx.CPU}, "cuda"}, {gpu, "metal"}, {gpu, ""}} {
		if n := mlx.CompileNotice(c.sel, c.backend); n != "" {
			t.Errorf("%v on %q: notice %q, want none", c.sel.Device, c.backend, n)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "gather_float32_int32_1.ptx"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := mlx.CompileNotice(gpu, "cuda"); n != "" {
		t.Errorf("warm cache: notice %q, want none", n)
	}
}

// TestHostReads: scalars are built on the host in every dtype, and reads
// convert (float16 -> float64, a transposed view) exactly, on the CPU stream
// whatever the device.
func TestHostReads(t *testing.T) {
	on(t, func(s *mlx.Scope) error {
		for _, dt := range []mlx.Dtype{mlx.Float16, mlx.Bfloat16, mlx.Float32, mlx.Int32, mlx.Uint32, mlx.Float64} {
			a := s.Track(mlx.Scalar(3.5, dt))
			if err := s.Err(); err != nil {
				return err
			}
			want := 3.5
			if dt == mlx.Int32 || dt == mlx.Uint32 {
				want = 3
			}
			if v, err := a.Item(); err != nil || v != want || a.Dtype() != dt {
				t.Errorf("Scalar(3.5, %v): %v %v (dtype %v)", dt, v, err, a.Dtype())
			}
		}
		x := s.Track(mlx.FromFloat32s([]float32{1, 2, 3, 4, 5, 6}, 2, 3))
		h := s.Track(mlx.AsType(x, mlx.Float16))
		tr := s.Track(mlx.Transpose(h)) // [3, 2], not row-contiguous
		if err := s.Err(); err != nil {
			return err
		}
		got, err := tr.Float64s()
		if err != nil {
			return err
		}
		if want := []float64{1, 4, 2, 5, 3, 6}; len(got) != 6 || got[0] != want[0] || got[1] != want[1] || got[5] != want[5] {
			t.Errorf("transposed float16 read as float64: %v, want %v", got, want)
		}
		full := s.Track(mlx.Full(-2.25, mlx.Bfloat16, 2))
		if v, err := full.Float32s(); err != nil || v[1] != -2.25 {
			t.Errorf("Full(-2.25, bfloat16): %v %v", v, err)
		}
		return s.Err()
	})
}

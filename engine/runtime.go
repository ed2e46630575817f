package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mlx-genkit/genkit/mlx"
)

// The runtime as front ends see it: these functions enter the MLX thread
// themselves, so the TUI and the CLI never import the mlx package.

// DType is an array element type (float32, float16, bfloat16, ...).
type DType = mlx.Dtype

// The compute dtypes a user can ask for.
const (
	Float32  = mlx.Float32
	Float16  = mlx.Float16
	BFloat16 = mlx.Bfloat16
)

// ParseDType reads float32, float16 or bfloat16.
func ParseDType(s string) (DType, error) { return mlx.ParseFloatDtype(s) }

// DeviceInfo describes the device MLX computes on.
type DeviceInfo = mlx.DeviceInfo

// MemoryStats are MLX's allocator counters.
type MemoryStats = mlx.MemoryStats

// Device describes the device in use.
func Device(ctx context.Context) (DeviceInfo, error) {
	return mlx.Call(ctx, func() (DeviceInfo, error) {
		d, err := mlx.DefaultDevice()
		if err != nil {
			return DeviceInfo{}, err
		}
		return mlx.Info(d)
	})
}

// OnGPU reports whether info is a GPU.
func OnGPU(info DeviceInfo) bool { return info.Device == mlx.GPU }

// Memory reads the allocator's counters (active, peak, cache).
func Memory(ctx context.Context) (MemoryStats, error) { return mlx.Call(ctx, mlx.Memory) }

// ResetPeakMemory restarts the peak-memory counter.
func ResetPeakMemory(ctx context.Context) error { return mlx.Do(ctx, mlx.ResetPeakMemory) }

// Runtime describes the linked MLX: its version, the GPU backend ("" for
// none: the CPU build) and, for CUDA, where compiled kernels are cached.
type Runtime struct {
	Version     string
	Backend     string
	KernelCache string
}

// RuntimeInfo describes the linked MLX.
func RuntimeInfo(ctx context.Context) (Runtime, error) {
	return mlx.Call(ctx, func() (Runtime, error) {
		r := Runtime{Version: mlx.Version(), Backend: mlx.GPUBackend()}
		if r.Backend == "cuda" {
			r.KernelCache = mlx.KernelCacheDir()
		}
		return r, nil
	})
}

// CompileNotice is the line to show before the first GPU work of a process
// whose kernel cache is cold ("" otherwise).
func CompileNotice() string {
	n, _ := mlx.Call(context.Background(), func() (string, error) {
		return mlx.CompileNotice(mlx.Selected(), mlx.GPUBackend()), nil
	})
	return n
}

// Load loads the model at path (a .gguf file or a model folder) on the MLX
// thread; ctx cancels it while it waits for the thread.
func Load(ctx context.Context, path string, opts LoadOptions) (*Model, error) {
	return mlx.Call(ctx, func() (*Model, error) { return LoadModel(path, opts) })
}

// Open resolves spec (a path, a hub id, or "" for the default model; see
// ResolveModel) and loads it.
func Open(ctx context.Context, spec string, opts LoadOptions, progress func(file string, done, total int64)) (*Model, error) {
	path, err := ResolveModel(spec, progress)
	if err != nil {
		return nil, err
	}
	return Load(ctx, path, opts)
}

// Close releases the model's arrays on the MLX thread.
func (m *Model) Close() {
	_ = mlx.Do(context.Background(), func() error { m.Free(); return nil })
}

// DeviceEnv is the environment variable naming the device (auto, gpu or
// cpu) when --device is not given.
const DeviceEnv = mlx.DeviceEnv

// SelectDevice applies a device choice before any MLX work: flag when the
// user gave --device (flagSet), else $GENKIT_DEVICE, else auto. It keeps
// MLX's compiled GPU kernels in genkit's cache unless MLX_PTX_CACHE_DIR
// says otherwise, and returns auto's fallback notice ("" when none).
func SelectDevice(flag string, flagSet bool) (string, error) {
	choice, err := mlx.DeviceFromEnv()
	if flagSet {
		choice, err = mlx.ParseDeviceChoice(flag)
		if err != nil {
			err = fmt.Errorf("--%w", err)
		}
	}
	if err != nil {
		return "", err
	}
	if os.Getenv(mlx.KernelCacheEnv) == "" {
		if dir, err := CacheDir(); err == nil {
			_ = os.Setenv(mlx.KernelCacheEnv, filepath.Join(dir, "kernels", "mlx-"+mlx.Version()))
		}
	}
	sel, err := mlx.SelectDevice(choice)
	if err != nil {
		return "", err
	}
	return sel.Notice, nil
}

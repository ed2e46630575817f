package mlx

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// Device is where MLX runs ops: the CPU or the GPU (Metal on macOS, CUDA on
// NVIDIA).
type Device int

// The device kinds.
const (
	CPU Device = 0
	GPU Device = 1
)

func (d Device) String() string {
	if d == GPU {
		return "gpu"
	}
	return "cpu"
}

// SetDefaultDevice makes d the device for later ops on the MLX thread.
func SetDefaultDevice(d Device) error {
	return check("set_default_device", C.gk_set_default_device(C.int(d)))
}

// DefaultDevice is the device ops run on.
func DefaultDevice() (Device, error) {
	var t C.int
	err := check("default_device", C.gk_default_device(&t))
	return Device(t), err
}

// DeviceAvailable reports whether the linked MLX backend can run on d.
func DeviceAvailable(d Device) (bool, error) {
	var ok C.int
	err := check("device_available", C.gk_device_available(C.int(d), &ok))
	return ok != 0, err
}

// DeviceInfo describes a device as the linked MLX backend reports it.
type DeviceInfo struct {
	Device  Device
	Backend string // "cpu", "cuda" or "metal"
	Name    string // e.g. "NVIDIA H100 80GB HBM3"; may be empty on the CPU
	Arch    string // e.g. "sm_90" or "applegpu_g15s"
	Memory  uint64 // total memory in bytes, 0 when unknown
}

// String is a one-line description such as "gpu (cuda, NVIDIA H100, 79.1 GiB)".
func (i DeviceInfo) String() string {
	parts := []string{i.Backend}
	if i.Name != "" {
		parts = append(parts, i.Name)
	}
	if i.Memory > 0 {
		parts = append(parts, fmt.Sprintf("%.1f GiB", float64(i.Memory)/(1<<30)))
	}
	return fmt.Sprintf("%s (%s)", i.Device, strings.Join(parts, ", "))
}

// Info describes device d. It must run on the MLX thread.
func Info(d Device) (DeviceInfo, error) {
	info := DeviceInfo{Device: d, Backend: "cpu"}
	var name, arch [256]C.char
	var mem C.size_t
	if err := check("device_info", C.gk_device_info(C.int(d), &name[0], 256, &arch[0], 256, &mem)); err != nil {
		if d == CPU {
			return info, nil // the CPU needs no description to run
		}
		return info, err
	}
	info.Name = C.GoString(&name[0])
	info.Arch = C.GoString(&arch[0])
	info.Memory = uint64(mem)
	if d == GPU {
		info.Backend = GPUBackend()
	}
	return info, nil
}

// GPUBackend reports which GPU backend the linked MLX library has: "cuda",
// "metal" or "" for a CPU-only build (MLX has Metal on macOS and CUDA on
// Linux). It must run on the MLX thread.
func GPUBackend() string {
	if ok, err := DeviceAvailable(GPU); err != nil || !ok {
		return ""
	}
	if runtime.GOOS == "darwin" {
		return "metal"
	}
	return "cuda"
}

// DeviceChoice is what the user asked for: "auto", "gpu" or "cpu".
type DeviceChoice string

// The device choices.
const (
	DeviceAuto DeviceChoice = "auto"
	DeviceGPU  DeviceChoice = "gpu"
	DeviceCPU  DeviceChoice = "cpu"
)

// DeviceEnv is the environment variable that chooses the device when no
// flag does.
const DeviceEnv = "GENKIT_DEVICE"

// ParseDeviceChoice reads "auto", "gpu" or "cpu" (case-insensitive; empty is
// auto).
func ParseDeviceChoice(s string) (DeviceChoice, error) {
	switch c := DeviceChoice(strings.ToLower(strings.TrimSpace(s))); c {
	case "":
		return DeviceAuto, nil
	case DeviceAuto, DeviceGPU, DeviceCPU:
		return c, nil
	}
	return "", fmt.Errorf("device %q: want auto, gpu or cpu", s)
}

// Selection is the outcome of choosing a device.
type Selection struct {
	Choice DeviceChoice
	Device Device
	// Notice is a one-line explanation when auto could not use a GPU that
	// the linked backend has (empty otherwise).
	Notice string
}

var (
	selMu    sync.Mutex
	selDone  bool         // a choice has been resolved
	pending  DeviceChoice // asked for before the MLX thread started
	selected Selection
	selErr   error
)

// SelectDevice chooses the device for every later op: the GPU when the
// choice is gpu, the CPU when it is cpu, and for auto the GPU when the
// linked backend has a usable one (a tiny op is evaluated there to make
// sure), else the CPU. It fails when gpu is asked for and none is usable,
// or when nothing can run at all (a CUDA build with no visible GPU cannot
// allocate even for the CPU). The choice also holds for an MLX thread that
// replaces a lost one. Asking again for the choice in force reuses its
// outcome.
func SelectDevice(choice DeviceChoice) (Selection, error) {
	selMu.Lock()
	if !selDone {
		pending = choice // the MLX thread, when it starts, resolves this one
	}
	selMu.Unlock()
	var sel Selection
	err := Do(context.Background(), func() error {
		selMu.Lock()
		done, prev, prevErr := selDone, selected, selErr
		selMu.Unlock()
		if done && prev.Choice == choice {
			sel = prev
			return prevErr
		}
		var err error
		sel, err = selectOnThread(choice)
		return err
	})

	return sel, err
}

// DeviceFromEnv is the choice named by GENKIT_DEVICE (auto when unset).
func DeviceFromEnv() (DeviceChoice, error) {
	c, err := ParseDeviceChoice(os.Getenv(DeviceEnv))
	if err != nil {
		return "", fmt.Errorf("%s: %w", DeviceEnv, err)
	}
	return c, nil
}

// selectOnThread runs on the MLX thread.
func selectOnThread(choice DeviceChoice) (Selection, error) {
	selMu.Lock()
	defer selMu.Unlock()
	sel, err := resolveDevice(choice)
	selDone, selected, selErr = true, sel, err
	if err != nil {
		return sel, err
	}
	return sel, SetDefaultDevice(sel.Device)
}

// applySelection runs on a newly bound MLX thread: the first one resolves
// the choice SelectDevice asked for, else GENKIT_DEVICE (or auto); a
// replacement thread reapplies the choice in force.
func applySelection() {
	selMu.Lock()
	done, sel, err, choice := selDone, selected, selErr, pending
	selMu.Unlock()
	if done {
		if err == nil {
			_ = SetDefaultDevice(sel.Device)
		}
		return
	}
	if choice == "" {
		if choice, err = DeviceFromEnv(); err != nil {
			selMu.Lock()
			selDone, selErr = true, err
			selMu.Unlock()
			return
		}
	}
	_, _ = selectOnThread(choice)
}

// Selected is the device choice in force.
func Selected() Selection {
	selMu.Lock()
	defer selMu.Unlock()
	return selected
}

func probe(d Device) error { return check("device_probe", C.gk_device_probe(C.int(d))) }

func resolveDevice(choice DeviceChoice) (Selection, error) {
	sel := Selection{Choice: choice, Device: CPU}
	backend := GPUBackend()
	var gpuErr error
	if backend == "" {
		gpuErr = errors.New("the linked MLX library is a CPU-only build")
	} else {
		var n C.int
		if err := check("device_count", C.gk_device_count(C.int(GPU), &n)); err != nil {
			gpuErr = err
		} else if n == 0 {
			gpuErr = fmt.Errorf("MLX's %s backend sees no GPU", backend)
		} else if err := probe(GPU); err != nil {
			gpuErr = err
		}
	}
	switch choice {
	case DeviceGPU:
		if gpuErr != nil {
			return sel, fmt.Errorf("--device gpu: no usable GPU: %v", gpuErr)
		}
		sel.Device = GPU
		return sel, nil
	case DeviceAuto, "":
		if gpuErr == nil {
			sel.Device = GPU
			return sel, nil
		}
		if backend != "" {
			sel.Notice = fmt.Sprintf("no usable GPU (%v); running on the CPU", gpuErr)
		}
	}
	if err := probe(CPU); err != nil {
		if backend == "cuda" || strings.Contains(strings.ToLower(err.Error()), "cuda") {
			return sel, fmt.Errorf("cannot run: MLX's CUDA build needs a visible NVIDIA GPU even for the CPU (%v); "+
				"make a GPU visible (CUDA_VISIBLE_DEVICES, driver >= 580) or build genkit with the CPU wheel (make MLX_BACKEND=cpu)", err)
		}
		return sel, fmt.Errorf("cannot run on the CPU: %w", err)
	}
	return sel, nil
}

// KernelCacheEnv names the folder where MLX's CUDA backend keeps the GPU
// kernels it compiles at run time.
const KernelCacheEnv = "MLX_PTX_CACHE_DIR"

// KernelCacheDir is where MLX's CUDA backend caches compiled kernels:
// $MLX_PTX_CACHE_DIR, else <temp>/mlx/<version>/ptx (MLX's own default).
func KernelCacheDir() string {
	if d := os.Getenv(KernelCacheEnv); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "mlx", Version(), "ptx")
}

// KernelCacheCold reports whether the kernel cache holds no compiled kernel
// yet, so the first GPU run will spend a while compiling.
func KernelCacheCold() bool {
	m, _ := filepath.Glob(filepath.Join(KernelCacheDir(), "*.ptx"))
	return len(m) == 0
}

// CompileNotice is the line shown while MLX's CUDA backend compiles its
// kernels on a first run (empty when there is nothing to say: another
// device or backend, or a warm cache).
func CompileNotice(sel Selection, backend string) string {
	if sel.Device != GPU || backend != "cuda" || !KernelCacheCold() {
		return ""
	}
	return "compiling GPU kernels, first run only (a minute or two; cached in " + KernelCacheDir() + ")"
}

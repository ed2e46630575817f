package mlx

/*
#include "shim.h"
*/
import "C"

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

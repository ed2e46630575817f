package mlx

/*
#include "shim.h"
*/
import "C"

// MemoryStats are MLX's allocator counters, in bytes.
type MemoryStats struct {
	Active uint64 // memory held by live arrays
	Peak   uint64 // highest Active since start or the last ResetPeakMemory
	Cache  uint64 // freed buffers kept for reuse
	Limit  uint64 // the memory limit guiding evaluation
}

// Memory reads the allocator counters.
func Memory() (MemoryStats, error) {
	var a, p, c, l C.size_t
	if err := check("memory", C.gk_memory(&a, &p, &c, &l)); err != nil {
		return MemoryStats{}, err
	}
	return MemoryStats{Active: uint64(a), Peak: uint64(p), Cache: uint64(c), Limit: uint64(l)}, nil
}

// ResetPeakMemory resets the peak counter.
func ResetPeakMemory() error { return check("reset_peak_memory", C.gk_reset_peak_memory()) }

// SetMemoryLimit sets the memory limit and returns the previous one.
func SetMemoryLimit(bytes uint64) (uint64, error) {
	var prev C.size_t
	err := check("set_memory_limit", C.gk_set_memory_limit(C.size_t(bytes), &prev))
	return uint64(prev), err
}

// SetCacheLimit sets the buffer cache limit (0 disables the cache) and
// returns the previous one.
func SetCacheLimit(bytes uint64) (uint64, error) {
	var prev C.size_t
	err := check("set_cache_limit", C.gk_set_cache_limit(C.size_t(bytes), &prev))
	return uint64(prev), err
}

// ClearCache returns cached buffers to the system.
func ClearCache() error { return check("clear_cache", C.gk_clear_cache()) }

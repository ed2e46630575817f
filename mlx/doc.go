// Package mlx binds Apple's MLX array framework for Go through mlx-genkit's
// own thin C layer (shim.h).
//
// Threading: MLX keeps its default streams, compile cache and random state per
// OS thread, so every MLX call in a process runs on one goroutine locked to one
// thread. Code that touches arrays runs inside Do, from any goroutine:
//
//	err := mlx.Do(func() error {
//		a, err := mlx.FromFloat32s([]float32{1, 2, 3}, 3)
//		...
//	})
//
// Calling an op outside Do returns an error; it never corrupts MLX state.
//
// Lifetime: every *Array owns a C++ handle that must be released with Free
// (or through a Scope). LiveArrays reports how many handles exist, so tests
// can assert that nothing leaks. Freeing a handle never invalidates arrays
// computed from it: MLX's graph keeps what it needs.
//
// Errors: a C++ exception (shape mismatch, bad file, out of memory) comes back
// as a Go error carrying MLX's message; the process goes on.
package mlx

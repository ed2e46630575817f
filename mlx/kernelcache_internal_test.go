package mlx

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKernelCacheSHA256: the shim's SHA-256 (cache keys and checksums)
// agrees with Go's at the padding boundaries.
func TestKernelCacheSHA256(t *testing.T) {
	for _, n := range []int{0, 1, 55, 56, 63, 64, 65, 119, 120, 1000} {
		data := bytes.Repeat([]byte{byte(n), 'a'}, n)[:n]
		want := sha256.Sum256(data)
		if got := sha256Hex(data); got != hex.EncodeToString(want[:]) {
			t.Errorf("%d bytes: %s, want %x", n, got, want)
		}
	}
}

// TestKernelCacheFile: a stored file reads back; a missing, truncated,
// extended, bit-flipped or foreign file is refused.
func TestKernelCacheFile(t *testing.T) {
	dir := t.TempDir()
	payload := bytes.Repeat([]byte("\x7fELF cubin \x00 bytes "), 300)
	if err := kernelCacheStore(dir, "k1", payload); err != nil {
		t.Fatal(err)
	}
	got, ok := kernelCacheLoad(dir, "k1")
	if !ok || !bytes.Equal(got, payload) {
		t.Fatalf("read back: ok %v, %d bytes, want %d", ok, len(got), len(payload))
	}
	if _, ok := kernelCacheLoad(dir, "missing"); ok {
		t.Error("a missing file was loaded")
	}
	path := filepath.Join(dir, "k1.gkc")
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	flip := append([]byte(nil), good...)
	flip[len(flip)-7] ^= 1
	magic := append([]byte(nil), good...)
	magic[0] = 'X'
	for name, data := range map[string][]byte{
		"truncated":    good[:len(good)-1],
		"header only":  good[:48],
		"short header": good[:20],
		"empty":        {},
		"extended":     append(append([]byte(nil), good...), 0),
		"payload flip": flip,
		"wrong magic":  magic,
		"raw cubin":    payload,
	} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, ok := kernelCacheLoad(dir, "k1"); ok {
			t.Errorf("%s file was loaded", name)
		}
	}
	if err := os.WriteFile(path, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := kernelCacheLoad(dir, "k1"); !ok {
		t.Error("the restored file was refused")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if err := kernelCacheStore(filepath.Join(path, "sub"), "k2", payload); err == nil {
		t.Error("storing under a file (an unwritable directory) succeeded")
	}
}

// TestKernelCacheObtain: the first process compiles and stores, the next
// loads without compiling, a damaged file is recompiled and replaced, a
// failing compiler is an error only when no sound file exists, and an
// unwritable directory still gives the compiled kernel.
func TestKernelCacheObtain(t *testing.T) {
	dir := t.TempDir()
	const src = "extern \"C\" __global__ void k() {}"
	bin, compiled, err := kernelCacheObtainFake(dir, "key", src, false, "")
	if err != nil || !compiled || !strings.HasSuffix(bin, src) {
		t.Fatalf("first: %q compiled %v err %v", bin, compiled, err)
	}
	bin2, compiled, err := kernelCacheObtainFake(dir, "key", src, true, "")
	if err != nil || compiled || bin2 != bin {
		t.Fatalf("second (failing compiler, sound file): compiled %v err %v, same %v", compiled, err, bin2 == bin)
	}
	path := filepath.Join(dir, "key.gkc")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data[:len(data)-3], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := kernelCacheObtainFake(dir, "key", src, true, ""); err == nil {
		t.Error("a truncated file was used (the failing compiler was not called)")
	}
	bin3, compiled, err := kernelCacheObtainFake(dir, "key", src, false, "")
	if err != nil || !compiled || bin3 != bin {
		t.Fatalf("after truncation: compiled %v err %v", compiled, err)
	}
	if _, compiled, err := kernelCacheObtainFake(dir, "key", src, false, ""); err != nil || compiled {
		t.Errorf("the recompiled file was not stored: compiled %v err %v", compiled, err)
	}
	// A sound file the driver refuses is compiled anew and replaced; a
	// compiled kernel the driver refuses is an error (the caller falls back).
	if _, _, err := kernelCacheObtainFake(dir, "key", src, false, "CUBIN"); err == nil {
		t.Error("a kernel the driver refuses was returned")
	}
	if err := kernelCacheStore(dir, "key", []byte("STALE")); err != nil {
		t.Fatal(err)
	}
	if bin, compiled, err := kernelCacheObtainFake(dir, "key", src, false, "STALE"); err != nil || !compiled || bin == "STALE" {
		t.Errorf("a refused cache file: compiled %v err %v bin %q", compiled, err, bin)
	}
	if bin, compiled, err := kernelCacheObtainFake(dir, "key", src, true, "STALE"); err != nil || compiled || bin == "STALE" {
		t.Errorf("the refused file was not replaced: compiled %v err %v bin %q", compiled, err, bin)
	}
	blocked := filepath.Join(path, "sub") // under a regular file: not writable
	for i := 0; i < 2; i++ {
		if bin, compiled, err := kernelCacheObtainFake(blocked, "key", src, false, ""); err != nil || !compiled || bin == "" {
			t.Errorf("unwritable dir, call %d: compiled %v err %v", i, compiled, err)
		}
	}
}

// TestKernelCacheDecide: precompiled only with the cache not turned off, a
// directory, NVRTC, the compute capability and a writable directory.
func TestKernelCacheDecide(t *testing.T) {
	zero, one, d := "0", "1", "/some/dir"
	cases := []struct {
		env              *string
		dir              string
		nvrtc, cc, dirOK bool
		on               bool
		why              string
	}{
		{nil, "/x", true, true, true, true, "on"},
		{&one, "/x", true, true, true, true, "on"},
		{&d, "/x", true, true, true, true, "on"},
		{&zero, "/x", true, true, true, false, "GENKIT_KERNEL_CACHE=0"},
		{nil, "", true, true, true, false, "no cache directory"},
		{nil, "/x", false, true, true, false, "NVRTC"},
		{nil, "/x", true, false, true, false, "CUDA driver"},
		{nil, "/x", true, true, false, false, "cannot be written"},
	}
	for i, c := range cases {
		on, why := kernelCacheDecide(c.env, c.dir, c.nvrtc, c.cc, c.dirOK)
		if on != c.on || !strings.Contains(why, c.why) {
			t.Errorf("case %d: on %v (%q), want %v (%q)", i, on, why, c.on, c.why)
		}
	}
}

// TestPrecompiledKernelsOffCPU: without NVRTC in the process (the CPU
// build) the kernels stay on MLX's path and the directory is not made.
func TestPrecompiledKernelsOffCPU(t *testing.T) {
	if GPUBackend() == "cuda" {
		// The decision is made once per process and a CUDA build makes it
		// on (TestPrecompiledKernelsGPU covers that build).
		t.Skip("a CUDA build")
	}
	dir := filepath.Join(t.TempDir(), "kernels")
	defer SetPrecompiledKernelDir("")
	SetPrecompiledKernelDir("")
	if st := PrecompiledKernels(); st.On || (os.Getenv("GENKIT_KERNEL_CACHE") == "" && !strings.Contains(st.Why, "no cache directory")) {
		t.Errorf("no directory: %+v", st)
	}
	SetPrecompiledKernelDir(dir)
	st := PrecompiledKernels()
	if st.On {
		t.Skip("NVRTC is loaded: a CUDA build (TestPrecompiledKernelsGPU covers it)")
	}
	if os.Getenv("GENKIT_KERNEL_CACHE") == "" && !strings.Contains(st.Why, "NVRTC") {
		t.Errorf("CPU build: %+v, want NVRTC not loaded", st)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the directory was made off CUDA: %v", err)
	}
}

package mlx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/mlx"
)

// shimBodies are the kernel bodies in shim.cpp (const char* kName = R"(...)").
func shimBodies(t *testing.T) map[string]string {
	t.Helper()
	src, err := os.ReadFile("shim.cpp")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range regexp.MustCompile(`(?s)const char\* (k\w+) = R"\((.*?)\)";`).FindAllStringSubmatch(string(src), -1) {
		out[m[1]] = m[2]
	}
	return out
}

// TestKernelSource: a variant's standalone source holds its template values
// as constexprs, the shapes its body reads as int arguments, and the body
// of shim.cpp verbatim (one source of truth); bad requests are refused.
func TestKernelSource(t *testing.T) {
	bodies := shimBodies(t)
	src, err := mlx.KernelSource(mlx.KernelQProduct, mlx.Float16, []int{2, 1, 1, 0, 0, 4}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"#include <cuda_fp16.h>", `extern "C" __global__ void genkit_qproduct_`,
		"const __half* x,", "const float* prm,", "const uint32_t* w,", "const __half* scales,", "__half* y",
		"using T = __half;", "constexpr int M = 2;", "constexpr bool NORM = true;", "constexpr bool GLU = true;",
		"constexpr bool HASBIAS = false;", "constexpr bool RES = false;", "constexpr int BITS = 4;",
		"int w_dim0,", "int w_dim1,", "int scales_dim0,", "int scales_dim1)",
		"const int w_shape[2] = {w_dim0, w_dim1};", "const int scales_shape[2] = {scales_dim0, scales_dim1};",
		bodies["kQuantKDim"] + bodies["kProductPrologue"] + bodies["kQuantBody"] + bodies["kProductEpilogue"],
	} {
		if !strings.Contains(src, want) {
			t.Errorf("quantized product source lacks %q", want)
		}
	}
	if strings.Contains(src, "biases_dim0") || strings.Contains(src, "x_dim0") {
		t.Error("a shape the body does not read became an argument")
	}
	att, err := mlx.KernelSource(mlx.KernelAttention, mlx.Bfloat16, []int{64, 9, 3, 0, 1}, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`extern "C" __global__ void genkit_kernel(`, "using T = __nv_bfloat16;", "constexpr int HD = 64;",
		"constexpr int NH = 9;", "constexpr int NKV = 3;", "constexpr bool QKNORM = false;", "constexpr bool TRAD = true;",
		"const int32_t* meta,", "int kc_dim3)", "const int kc_shape[4] = {kc_dim0, kc_dim1, kc_dim2, kc_dim3};",
		bodies["kAttnConsts"] + bodies["kAttnItem"] + bodies["kAttnBody"],
	} {
		if !strings.Contains(att, want) {
			t.Errorf("attention source lacks %q", want)
		}
	}
	dense, err := mlx.KernelSource(mlx.KernelProduct, mlx.Float32, []int{1, 0, 0, 0, 1}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dense, "const float* w,") || !strings.Contains(dense, "constexpr bool RES = true;") ||
		strings.Contains(dense, "BITS") || strings.Contains(dense, "scales") {
		t.Errorf("dense product source:\n%s", dense)
	}
	tile, err := mlx.KernelSource(mlx.KernelTileQProduct, mlx.Bfloat16, []int{1, 1, 1, 0, 0, 1, 2560, 4}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`extern "C" __global__ void genkit_tqproduct_`, "constexpr int R = 1;", "constexpr int XS = 2560;",
		"constexpr int BITS = 4;", "using T = __nv_bfloat16;",
		bodies["kQuantKDim"] + bodies["kTileHead"] + bodies["kTileShared"] + bodies["kTilePrologue"] +
			bodies["kTileQuantBody"] + bodies["kTileEpilogue"],
	} {
		if !strings.Contains(tile, want) {
			t.Errorf("tiled quantized product source lacks %q", want)
		}
	}
	// The block kernel: the same bodies as its five stages, once each (the
	// attention body inside the loop over the block's items), the shared
	// arrays declared once, a barrier between stages and none after the last.
	blk, err := mlx.KernelSource(mlx.KernelQBlock, mlx.Bfloat16, []int{2, 64, 9, 3, 1, 0, 2 * 1536, 1, 0, 0, 1, 1, 2, 4}, false)
	if err != nil {
		t.Fatal(err)
	}
	stage := bodies["kQuantKDim"] + bodies["kTileHead"] + bodies["kTilePrologue"] + bodies["kTileQuantBody"] + bodies["kTileEpilogue"]
	for _, c := range []struct {
		text string
		n    int
	}{
		{`extern "C" __global__ void genkit_qblock_`, 1}, {"constexpr int M = 2;", 1}, {"constexpr bool QB = true;", 1},
		{"constexpr int BITS = 4;", 1}, {"const uint32_t* ws,", 1}, {"int dn_w_dim1", 1},
		{"const __nv_bfloat16* after,", 1}, {"after[", 0}, {"__trap();", 1},
		{bodies["kTileShared"], 1}, {stage, 4}, {bodies["kAttnBody"], 1}, {bodies["kAttnItem"], 0},
		{"grid_sync();", 4}, {"    const T* x = h;\n", 1}, {"    T* y = out;\n", 1},
		{"    constexpr bool HASBIAS = QB;\n", 1}, {"    constexpr bool GLU = true;\n", 1},
	} {
		if got := strings.Count(blk, c.text); got != c.n {
			t.Errorf("block kernel source holds %q %d times, want %d", c.text, got, c.n)
		}
	}
	// Names: the same variant always gets the same name, another variant another.
	again, _ := mlx.KernelSource(mlx.KernelProduct, mlx.Float32, []int{1, 0, 0, 0, 1}, false)
	other, _ := mlx.KernelSource(mlx.KernelProduct, mlx.Float32, []int{2, 0, 0, 0, 1}, false)
	name := regexp.MustCompile(`void (\w+)\(`)
	if name.FindString(again) != name.FindString(dense) || name.FindString(other) == name.FindString(dense) {
		t.Errorf("names: %s, %s, %s", name.FindString(dense), name.FindString(again), name.FindString(other))
	}
	for _, bad := range []struct {
		kind int
		dt   mlx.Dtype
		vals []int
	}{
		{mlx.KernelProduct, mlx.Float32, []int{1, 0, 0, 0}},                                 // a value short
		{mlx.KernelProduct, mlx.Float32, []int{1, 0, 0, 0, 0, 4}},                           // BITS on a dense product
		{mlx.KernelProduct, mlx.Int32, []int{1, 0, 0, 0, 0}},                                // not a float dtype
		{7, mlx.Float32, []int{1, 0, 0, 0, 0}},                                              // no such kernel
		{mlx.KernelBlock, mlx.Float32, []int{1, 64, 9, 3, 0, 0, 1536, 0, 0, 0, 1, 1, 2, 4}}, // BITS on a dense block
		{mlx.KernelTileProduct, mlx.Float32, []int{1, 0, 0, 0, 0}},                          // R and XS missing
	} {
		if s, err := mlx.KernelSource(bad.kind, bad.dt, bad.vals, false); err == nil {
			t.Errorf("%+v gave a source:\n%.200s", bad, s)
		}
	}
}

// TestKernelSourceDump writes the standalone sources of the variants listed
// in $GENKIT_KERNEL_DUMP (a JSON file of {"kind", "dtype", "vals"} written by
// scripts/gpu/nvrtc_check.py) to $GENKIT_KERNEL_DUMP.out.json, for the
// script to compile with NVRTC. Skipped when the variable is unset.
func TestKernelSourceDump(t *testing.T) {
	spec := os.Getenv("GENKIT_KERNEL_DUMP")
	if spec == "" {
		t.Skip("GENKIT_KERNEL_DUMP is not set (scripts/gpu/nvrtc_check.py sets it)")
	}
	data, err := os.ReadFile(spec)
	if err != nil {
		t.Fatal(err)
	}
	var variants []struct {
		Kind  int    `json:"kind"`
		Dtype string `json:"dtype"`
		Vals  []int  `json:"vals"`
	}
	if err := json.Unmarshal(data, &variants); err != nil {
		t.Fatal(err)
	}
	dts := map[string]mlx.Dtype{"float32": mlx.Float32, "float16": mlx.Float16, "bfloat16": mlx.Bfloat16}
	var out []string
	for _, v := range variants {
		dt, ok := dts[v.Dtype]
		if !ok {
			t.Fatalf("dtype %q", v.Dtype)
		}
		s, err := mlx.KernelSource(v.Kind, dt, v.Vals, false)
		if err != nil {
			t.Fatalf("%+v: %v", v, err)
		}
		out = append(out, s)
	}
	js, _ := json.Marshal(out)
	if err := os.WriteFile(spec+".out.json", js, 0o644); err != nil {
		t.Fatal(err)
	}
}

// gemvOnce runs one dense float16 two-row GEMV and checks it against
// Matmul; it returns the cache's counters afterwards.
func gemvOnce(t *testing.T) mlx.PrecompiledKernelStats {
	t.Helper()
	err := mlx.Do(context.Background(), func() error {
		w := randomArray(t, 11, mlx.Float16, 96, 128)
		if err := mlx.Eval(w); err != nil {
			return err
		}
		x := randomArray(t, 12, mlx.Float16, 2, 1, 128)
		wT, _ := mlx.Transpose(w)
		want, err := mlx.Matmul(x, wT)
		if err != nil {
			return err
		}
		got, ok, err := mlx.GEMV(x, w)
		if err != nil || !ok {
			return fmt.Errorf("gemv: ok %v, err %v", ok, err)
		}
		defer mlx.Free(w, x, wT, want, got)
		if d := maxRelDiff(t, got, want); d > 4e-3 {
			return fmt.Errorf("relative difference %.3g", d)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return mlx.PrecompiledKernels()
}

// TestPrecompiledKernelsGPU: on a CUDA GPU a kernel is compiled once into
// the directory and a second process loads it without compiling, with the
// same results as MLX's matmul.
func TestPrecompiledKernelsGPU(t *testing.T) {
	cuda, _ := mlx.Call(context.Background(), func() (bool, error) { return onCUDA(), nil })
	if !cuda {
		t.Skip("CUDA only")
	}
	if os.Getenv("GENKIT_KERNEL_CACHE") == "0" {
		t.Skip("GENKIT_KERNEL_CACHE=0")
	}
	t.Setenv("GENKIT_KERNEL_CACHE", "") // a directory given there would win over dir
	dir := t.TempDir()
	mlx.SetPrecompiledKernelDir(dir)
	defer mlx.SetPrecompiledKernelDir("")
	before := mlx.PrecompiledKernels()
	st := gemvOnce(t)
	if !st.On || st.Compiled <= before.Compiled || st.Fallbacks != before.Fallbacks {
		t.Fatalf("first process: before %+v, after %+v (want one more compiled, no fallback)", before, st)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.gkc"))
	if len(files) == 0 {
		t.Fatal("no cache file written")
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestPrecompiledKernelsChild$", "-test.v")
	cmd.Env = append(os.Environ(), "GENKIT_KERNEL_CACHE="+dir, "GENKIT_TEST_KERNEL_CHILD=1")
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil || !strings.Contains(string(out), "child: loaded") {
		t.Fatalf("second process: %v", err)
	}
}

// TestPrecompiledKernelsChild is TestPrecompiledKernelsGPU's second process.
func TestPrecompiledKernelsChild(t *testing.T) {
	if os.Getenv("GENKIT_TEST_KERNEL_CHILD") != "1" {
		t.Skip("run by TestPrecompiledKernelsGPU")
	}
	st := gemvOnce(t)
	if !st.On || st.Compiled != 0 || st.Loaded == 0 || st.Fallbacks != 0 {
		t.Fatalf("child: %+v, want loaded with nothing compiled", st)
	}
	fmt.Printf("child: loaded %d, compiled %d\n", st.Loaded, st.Compiled)
}

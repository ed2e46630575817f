package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/internal/atomicfile"
)

// benchSynthetic measures random weights of a published shape, written once
// into the cache: genkit and mlx-lm on the bfloat16 directory and on its
// 4-bit/64 MLX conversion, llama.cpp on the F16 GGUF its own converter makes
// from the same directory and on that file quantized to Q4_0 (the same 4.5
// bits a weight as MLX's 4-bit/64 with bfloat16 scales and biases).
func benchSynthetic(ctx context.Context, name string, seed uint64, python, llamaBench, llamaSrc string, promptTokens int, meas benchMeasure) (map[string]any, error) {
	spec, err := engine.LookupSynthetic(name)
	if err != nil {
		return nil, err
	}
	cache, err := engine.CacheDir()
	if err != nil {
		return nil, err
	}
	base := filepath.Join(cache, "bench", fmt.Sprintf("synthetic-%s-s%d", spec.Name, seed))
	dir, q4 := base+"-bf16", base+"-mlx-q4g64"
	if err := onceInto(dir, "model.safetensors", func(tmp string) error {
		fmt.Fprintf(os.Stderr, "genkit bench: writing %.2fB random weights of %s (%s) to %s\n", float64(spec.Params())/1e9, spec.Name, spec.Source, dir)
		return engine.WriteSynthetic(ctx, tmp, spec, seed)
	}); err != nil {
		return nil, err
	}
	if err := onceInto(q4, "model.safetensors", func(tmp string) error {
		fmt.Fprintf(os.Stderr, "genkit bench: quantizing to %s\n", q4)
		return engine.Convert(ctx, dir, tmp, engine.ConvertOptions{QBits: 4, QGroup: 64, DType: engine.BFloat16})
	}); err != nil {
		return nil, err
	}
	dev := benchDevice()
	report := map[string]any{"model": fmt.Sprintf("synthetic %s (%s, %.2fB weights, seed %d)", spec.Name, spec.Source, float64(spec.Params())/1e9, seed),
		"weights": dir, "device": dev.String()}
	// Token ids spread over the regular vocabulary: the weights are random,
	// so the text means nothing and only the lengths matter.
	ids := func(n, salt int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = (i*7919 + salt) % spec.RegularTokens
		}
		return out
	}
	long, short := ids(promptTokens, 13), ids(38, 101)
	fixed := func(*engine.Model) ([]int, []int) { return long, short }
	for _, run := range []struct{ key, dir string }{{"genkit_bf16", dir}, {"genkit_q4", q4}} {
		g, err := benchLoaded(ctx, run.dir, engine.LoadOptions{NativeOnGPU: true}, meas, false, fixed)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", run.key, err)
		}
		report[run.key] = g
	}
	for _, run := range []struct{ key, dir string }{{"mlx_lm_bf16", dir}, {"mlx_lm_q4", q4}} {
		if lm, err := benchPython(python, "bench_mlx_lm.py", run.dir, long, short, meas); err != nil {
			warn("%s not measured: %v", run.key, err)
		} else {
			report[run.key] = lm
		}
	}
	if err := benchSyntheticLlamaCpp(report, python, llamaBench, llamaSrc, dir, base, promptTokens, engine.OnGPU(dev)); err != nil {
		warn("llama.cpp not measured: %v", err)
	}
	return report, nil
}

// benchSyntheticLlamaCpp converts the directory with llama.cpp's converter
// (F16), quantizes that to Q4_0 with llama-quantize and runs llama-bench on
// both.
func benchSyntheticLlamaCpp(report map[string]any, python, llamaBench, llamaSrc, dir, base string, pp int, gpu bool) error {
	bin, err := findLlamaBench(llamaBench)
	if err != nil {
		return err
	}
	quantize := filepath.Join(filepath.Dir(bin), "llama-quantize")
	if _, err := os.Stat(quantize); err != nil {
		return fmt.Errorf("llama-quantize not beside %s (make peers builds both)", bin)
	}
	src := llamaSrc
	for _, c := range []string{llamaSrc, os.Getenv("GENKIT_LLAMA_SRC"), filepath.Join("build", "peers", "src", "vendor", "llama.cpp")} {
		if c != "" {
			if _, err := os.Stat(filepath.Join(c, "convert_hf_to_gguf.py")); err == nil {
				src = c
				break
			}
		}
	}
	if src == "" {
		return fmt.Errorf("no llama.cpp source with convert_hf_to_gguf.py (--llama-src; make peers unpacks one)")
	}
	f16, q40 := base+"-f16.gguf", base+"-q4_0.gguf"
	if err := onceFile(f16, func(tmp string) error {
		fmt.Fprintf(os.Stderr, "genkit bench: llama.cpp's converter: %s\n", f16)
		return runQuiet(python, filepath.Join("scripts", "synthetic_gguf.py"), "--llama-src", src, "--model", dir, "--outfile", tmp, "--outtype", "f16")
	}); err != nil {
		return err
	}
	if err := onceFile(q40, func(tmp string) error {
		fmt.Fprintf(os.Stderr, "genkit bench: llama-quantize: %s\n", q40)
		return runQuiet(quantize, f16, tmp, "Q4_0")
	}); err != nil {
		return err
	}
	for _, run := range []struct{ key, gguf string }{{"llama_cpp_f16", f16}, {"llama_cpp_q4_0", q40}} {
		lc, err := benchLlamaCpp(bin, run.gguf, pp, 128, gpu)
		if err != nil {
			warn("%s not measured: %v", run.key, err)
			continue
		}
		report[run.key] = lc
	}
	return nil
}

// onceInto makes a directory once: make writes into a temporary sibling,
// renamed into place when it succeeds; a directory already holding marker
// is kept.
func onceInto(dir, marker string, make func(tmp string) error) error {
	if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
		return nil
	}
	tmp := dir + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := make(tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

// onceFile makes a file once, through a temporary name renamed into place.
func onceFile(path string, make func(tmp string) error) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	return atomicfile.WriteWith(path, filepath.Ext(path), 0o644, make)
}

// runQuiet runs a command, returning the tail of its output on failure.
func runQuiet(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", filepath.Base(name), err, lastLines(string(out), 5))
	}
	return nil
}

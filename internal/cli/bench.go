package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/steering"
	"github.com/spf13/cobra"
)

type benchSide struct {
	PrefillTPS    float64  `json:"prefill_tps"`
	DecodeTPS     float64  `json:"decode_tps"`
	PairDecodeTPS *float64 `json:"pair_decode_tps,omitempty"`
	Sweep4TPS     *float64 `json:"sweep4_decode_tps,omitempty"`
	// DecodeSteps is decode steps/s by lane count ("1", "2", "8"): the
	// median of the runs in DecodeRuns.
	DecodeSteps map[string]float64 `json:"decode_steps_per_s,omitempty"`
	// DecodeRuns is every run's decode steps/s by lane count (--repeat).
	DecodeRuns map[string][]float64 `json:"decode_steps_runs,omitempty"`
	// DecodeHostShare is, by lane count, the shares of decode time (all
	// runs) the host spent building steps' graphs, in async_eval and
	// waiting for tokens (engine.Stats Build, Queue, Wait; genkit's
	// pipelined loop only).
	DecodeHostShare map[string]hostShare `json:"decode_host_share,omitempty"`
	PeakMemoryMB    float64              `json:"peak_memory_mb,omitempty"`
	DecodeTokens    int                  `json:"decode_tokens,omitempty"`
	Weights         string               `json:"weights,omitempty"`
	Note            string               `json:"note,omitempty"`
}

// hostShare is where a pipelined decode's time went on the host.
type hostShare struct {
	Build float64 `json:"build"`
	Queue float64 `json:"queue"`
	Wait  float64 `json:"wait"`
}

// benchMeasure is how each decode is measured: tokens a run and runs (the
// median is reported).
type benchMeasure struct {
	tokens, repeat int
}

// median is the middle of xs (the mean of the two middle ones for an even
// count); 0 for none. xs is left as it is.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func newBenchCmd() *cobra.Command {
	var src, python, llamaBench, synthetic, llamaSrc string
	var qBits int
	var seed uint64
	var asJSON bool
	var promptTokens int
	var meas benchMeasure
	cmd := &cobra.Command{
		Use:   "bench [--json]",
		Short: "Measure prefill and decode (1, 2 and 8 lanes) beside mlx-lm, llama.cpp and transformers when present, in one run",
		Long: `bench measures genkit and the peers a user would pick instead, in one run on this machine:
  genkit       the converted MLX weights (dense fp32, or --q-bits), pipelined device decode
  genkit_sync  the same with the synchronous host loop (logits read every step)
  genkit_gguf  the GGUF itself as genkit loads it by default (quantized on a GPU)
  mlx_lm       mlx-lm on the converted weights (python with mlx-lm: --python)
  llama_cpp    llama.cpp's llama-bench on the GGUF (make peers builds it; --llama-bench)
  transformers HF transformers on the converted weights, when importable`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if meas.repeat < 1 {
				return fmt.Errorf("--repeat %d: measure each decode at least once", meas.repeat)
			}
			if python == "" {
				python = filepath.Join(os.Getenv("GENKIT_VENV"), "bin", "python")
				if os.Getenv("GENKIT_VENV") == "" {
					python = filepath.Join(".venv", "bin", "python")
				}
			}
			if synthetic != "" {
				if src != "" || qBits != 0 {
					return fmt.Errorf("--synthetic measures its own weights: leave out --model and --q-bits")
				}
				report, err := benchSynthetic(cmd.Context(), synthetic, seed, python, llamaBench, llamaSrc, promptTokens, meas)
				if err != nil {
					return err
				}
				if asJSON {
					return json.NewEncoder(cmd.OutOrStdout()).Encode(report)
				}
				printBench(cmd.OutOrStdout(), report, promptTokens, syntheticCols)
				return nil
			}
			path, err := engine.ResolveModel(src, nil)
			if err != nil {
				return err
			}
			cache, err := engine.CacheDir()
			if err != nil {
				return err
			}
			// Dense fp32 weights: on the CPU both engines then run BLAS GEMMs
			// (MLX's CPU quantized kernels are far slower); on Metal and CUDA
			// pass --q-bits to compare quantized kernels.
			name := "-mlx-f32"
			copts := engine.ConvertOptions{DType: engine.Float32}
			if qBits > 0 {
				name = fmt.Sprintf("-mlx-q%dg64", qBits)
				copts = engine.ConvertOptions{QBits: qBits, QGroup: 64}
			}
			dir := filepath.Join(cache, "bench", strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))+name)
			if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err != nil {
				fmt.Fprintf(os.Stderr, "genkit bench: converting %s to %s\n", path, dir)
				if err := engine.Convert(cmd.Context(), path, dir, copts); err != nil {
					return err
				}
			}
			report := map[string]any{"model": path, "weights": dir}
			dev := benchDevice()
			report["device"] = dev.String()
			var long, short []int
			isGGUF := strings.HasSuffix(path, ".gguf")
			type benchRun struct {
				key  string
				path string
				opts engine.LoadOptions
				sync bool
			}
			runs := []benchRun{{"genkit", dir, engine.LoadOptions{}, false}, {"genkit_sync", dir, engine.LoadOptions{}, true}}
			if isGGUF {
				runs = append(runs, benchRun{"genkit_gguf", path, engine.LoadOptions{NativeOnGPU: true}, false})
			}
			for _, run := range runs {
				g, err := benchLoaded(cmd.Context(), run.path, run.opts, meas, run.sync, func(m *engine.Model) ([]int, []int) {
					if long == nil {
						long, short = benchPrompts(m, promptTokens)
					}
					return long, short
				})
				if err != nil {
					return fmt.Errorf("%s: %w", run.key, err)
				}
				report[run.key] = g
			}
			if lm, err := benchPython(python, "bench_mlx_lm.py", dir, long, short, meas); err != nil {
				warn("mlx-lm not measured: %v", err)
			} else {
				report["mlx_lm"] = lm
			}
			if hf, err := benchPython(python, "bench_transformers.py", dir, long, short, meas); err != nil {
				warn("transformers not measured: %v", err)
			} else {
				report["transformers"] = hf
			}
			if isGGUF {
				if lc, err := benchLlamaCpp(llamaBench, path, promptTokens, 128, engine.OnGPU(dev)); err != nil {
					warn("llama.cpp not measured: %v", err)
				} else {
					report["llama_cpp"] = lc
				}
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(report)
			}
			printBench(cmd.OutOrStdout(), report, len(long), benchCols)
			return nil
		},
	}
	cmd.Flags().StringVar(&src, "model", "", "model to convert and measure (default: the default model)")
	cmd.Flags().StringVar(&python, "python", "", "python with mlx-lm (and transformers, if installed) (default: the venv's)")
	cmd.Flags().StringVar(&llamaBench, "llama-bench", "", "llama.cpp's llama-bench (default: $GENKIT_LLAMA_BENCH, build/peers/bin, then PATH)")
	cmd.Flags().IntVar(&promptTokens, "prompt-tokens", 512, "prefill prompt length")
	cmd.Flags().IntVar(&meas.tokens, "decode-tokens", 64, "tokens decoded per measurement")
	cmd.Flags().IntVar(&meas.repeat, "repeat", 3, "runs of each decode measurement (genkit's, mlx-lm's, transformers'); the median is reported, every run in decode_steps_runs")
	cmd.Flags().IntVar(&qBits, "q-bits", 0, "measure 4- or 8-bit quantized weights instead of dense fp32")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&synthetic, "synthetic", "", "measure random weights of a published shape instead (qwen3-4b, qwen3-0.6b): bf16 and 4-bit, beside mlx-lm and llama.cpp (F16, Q4_0) on the same values")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "seed of the synthetic weights")
	cmd.Flags().StringVar(&llamaSrc, "llama-src", "", "llama.cpp source tree whose convert_hf_to_gguf.py converts the synthetic weights (default: $GENKIT_LLAMA_SRC, then build/peers/src/vendor/llama.cpp)")
	return cmd
}

// benchCols are the report's engines in print order; syntheticCols those
// of a --synthetic run.
var (
	benchCols     = []string{"genkit", "genkit_sync", "genkit_gguf", "mlx_lm", "llama_cpp", "transformers"}
	syntheticCols = []string{"genkit_bf16", "mlx_lm_bf16", "llama_cpp_f16", "genkit_q4", "mlx_lm_q4", "llama_cpp_q4_0"}
)

// printBench prints the report as a table, a column per engine.
func printBench(w io.Writer, report map[string]any, promptLen int, cols []string) {
	fmt.Fprintf(w, "model %v on %v (weights %v)\n%-24s", report["model"], report["device"], report["weights"], "")
	var sides []*benchSide
	var names []string
	for _, c := range cols {
		if s, ok := report[c].(*benchSide); ok && s != nil {
			sides = append(sides, s)
			names = append(names, c)
			fmt.Fprintf(w, " %15s", c)
		}
	}
	fmt.Fprintln(w)
	row := func(label string, get func(*benchSide) float64) {
		fmt.Fprintf(w, "%-24s", label)
		for _, s := range sides {
			if v := get(s); v > 0 {
				fmt.Fprintf(w, " %15.1f", v)
			} else {
				fmt.Fprintf(w, " %15s", "n/a")
			}
		}
		fmt.Fprintln(w)
	}
	row(fmt.Sprintf("prefill tok/s (%d)", promptLen), func(s *benchSide) float64 { return s.PrefillTPS })
	for _, l := range []string{"1", "2", "8"} {
		row("decode steps/s, "+l+" lane", func(s *benchSide) float64 {
			if v, ok := s.DecodeSteps[l]; ok {
				return v
			}
			if l == "1" {
				return s.DecodeTPS
			}
			return 0
		})
	}
	row("peak memory MB", func(s *benchSide) float64 { return s.PeakMemoryMB })
	for i, s := range sides {
		if s.Weights != "" || s.Note != "" {
			fmt.Fprintf(w, "  %s: %s %s\n", names[i], s.Weights, s.Note)
		}
	}
}

// benchLoaded loads the model at path, measures it with benchGenkit on the
// prompts that prompts gives for it, and frees it.
func benchLoaded(ctx context.Context, path string, opts engine.LoadOptions, meas benchMeasure, sync bool,
	prompts func(*engine.Model) ([]int, []int)) (*benchSide, error) {
	m, err := engine.Load(ctx, path, opts)
	if err != nil {
		return nil, err
	}
	defer freeModel(m)
	long, short := prompts(m)
	g, err := benchGenkit(ctx, m, long, short, meas, sync)
	if err != nil {
		return nil, err
	}
	g.Weights = m.WeightsDescription()
	return g, nil
}

// benchDevice describes the device MLX computes on.
func benchDevice() engine.DeviceInfo {
	dev, _ := engine.Device(context.Background())
	return dev
}

// benchPrompts makes a long prompt of n tokens and a short chat prompt.
func benchPrompts(m *engine.Model, n int) ([]int, []int) {
	text := "The history of the lighthouse is a story of light, stone and the sea. "
	var long []int
	for len(long) < n {
		ids, _ := m.Tokenizer.Encode(text, false)
		long = append(long, ids...)
	}
	long = long[:n]
	chat, _ := m.ApplyChatTemplate([]engine.Message{{Role: "user", Content: "Tell me a story about a lighthouse keeper."}}, true)
	short, _ := m.Tokenizer.Encode(chat, false)
	return long, short
}

// benchGenkit measures prefill, decode at 1, 2 and 8 lanes (lanes after the
// first steered, as the pair and the sweep are) and the peak memory, through
// steering.Decode (the run the UI and genkit generate make), greedy.
func benchGenkit(ctx context.Context, m *engine.Model, long, short []int, meas benchMeasure, sync bool) (*benchSide, error) {
	_ = engine.ResetPeakMemory(ctx)
	decode := func(prompt []int, tokens int, steer *steering.Resolved, scales []float64) (engine.Stats, error) {
		gen := &sampling.GenerationConfig{DoSample: sampling.Ptr(false), MaxNewTokens: sampling.Ptr(tokens)}
		out, err := steering.Decode(ctx, m, steering.Run{Prompt: engine.Prompt{IDs: prompt}, Steering: steer, LaneScales: scales,
			Gen: gen, IgnoreEOS: true, Sync: sync}, steering.Observers{})
		if err != nil {
			return engine.Stats{}, err
		}
		return out.Stats, nil
	}
	// Warm up, the long prompt included: GPU backends compile kernels for
	// each new shape on first use, which is no part of prefill speed.
	if _, err := decode(short, 4, nil, nil); err != nil {
		return nil, err
	}
	if _, err := decode(long, 1, nil, nil); err != nil {
		return nil, err
	}
	t0 := time.Now()
	if _, err := decode(long, 1, nil, nil); err != nil {
		return nil, err
	}
	side := &benchSide{PrefillTPS: float64(len(long)) / time.Since(t0).Seconds(), DecodeSteps: map[string]float64{},
		DecodeRuns: map[string][]float64{}, DecodeHostShare: map[string]hostShare{}, DecodeTokens: meas.tokens}
	v := make([]float32, m.HiddenSize())
	for i := range v {
		v[i] = float32(i%7-3) * 0.01
	}
	steer, err := steering.Fixed(m, string(steering.ModeResidual), m.NumLayers()/2, v, 1)
	if err != nil {
		return nil, err
	}
	for _, lanes := range []int{1, 2, 5, 8} {
		var st *steering.Resolved
		var scales []float64
		if lanes > 1 {
			st = steer
			scales = make([]float64, lanes)
			for i := 1; i < lanes; i++ {
				scales[i] = 1
			}
		}
		// Warm up at this lane count first: GPU backends compile kernels for
		// new shapes on first use.
		if _, err := decode(short, 4, st, scales); err != nil {
			return nil, err
		}
		runs := make([]float64, 0, meas.repeat)
		var sum engine.Stats
		for r := 0; r < meas.repeat; r++ {
			stats, err := decode(short, meas.tokens, st, scales)
			if err != nil {
				return nil, err
			}
			runs = append(runs, float64(stats.Steps-1)/stats.Decode.Seconds())
			sum.Build += stats.Build
			sum.Queue += stats.Queue
			sum.Wait += stats.Wait
			sum.Decode += stats.Decode
		}
		steps := median(runs)
		tps := steps * float64(lanes)
		switch lanes {
		case 1:
			side.DecodeTPS = tps
		case 2:
			side.PairDecodeTPS = &tps
		case 5:
			// The sweep: four steered lanes (and the base) in one batch.
			sweep := tps * 4 / 5
			side.Sweep4TPS = &sweep
		}
		if lanes != 5 {
			side.DecodeSteps[strconv.Itoa(lanes)] = steps
			side.DecodeRuns[strconv.Itoa(lanes)] = runs
			if d := sum.Decode.Seconds(); !sync && d > 0 {
				side.DecodeHostShare[strconv.Itoa(lanes)] = hostShare{Build: sum.Build.Seconds() / d,
					Queue: sum.Queue.Seconds() / d, Wait: sum.Wait.Seconds() / d}
			}
		}
	}
	if st, err := engine.Memory(ctx); err == nil {
		side.PeakMemoryMB = float64(st.Peak) / 1e6
	}
	return side, nil
}

func joinIDs(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return strings.Join(s, ",")
}

// benchPython runs scripts/NAME (mlx-lm's or transformers' side) on the
// converted directory and reads its JSON.
func benchPython(python, name, dir string, long, short []int, meas benchMeasure) (*benchSide, error) {
	script := filepath.Join("scripts", name)
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("%s not found (run from the repository root)", script)
	}
	out, err := exec.Command(python, script, "--model", dir, "--decode-tokens", strconv.Itoa(meas.tokens),
		"--repeat", strconv.Itoa(meas.repeat), "--prompt-ids", joinIDs(long), "--short-ids", joinIDs(short)).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return nil, fmt.Errorf("%v: %s", err, lastLines(string(ee.Stderr), 3))
		}
		return nil, err
	}
	var side benchSide
	if err := json.Unmarshal(out, &side); err != nil {
		return nil, fmt.Errorf("%s output %q: %w", name, out, err)
	}
	return &side, nil
}

// findLlamaBench looks for llama.cpp's llama-bench.
func findLlamaBench(flag string) (string, error) {
	for _, c := range []string{flag, os.Getenv("GENKIT_LLAMA_BENCH"), filepath.Join("build", "peers", "bin", "llama-bench")} {
		if c == "" {
			continue
		}
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	p, err := exec.LookPath("llama-bench")
	if err != nil {
		return "", fmt.Errorf("llama-bench not found (make peers builds it)")
	}
	return p, nil
}

// benchLlamaCpp runs llama-bench on the GGUF: prefill of pp tokens and
// decode of tg tokens, all layers on the GPU when there is one.
func benchLlamaCpp(flag, gguf string, pp, tg int, gpu bool) (*benchSide, error) {
	bin, err := findLlamaBench(flag)
	if err != nil {
		return nil, err
	}
	args := []string{"-m", gguf, "-p", strconv.Itoa(pp), "-n", strconv.Itoa(tg), "-r", "3", "-o", "json"}
	threads := runtime.NumCPU()
	if gpu {
		args = append(args, "-ngl", "99")
	} else {
		args = append(args, "-t", strconv.Itoa(threads))
	}
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return nil, fmt.Errorf("%v: %s", err, lastLines(string(ee.Stderr), 3))
		}
		return nil, err
	}
	var rows []struct {
		NPrompt int     `json:"n_prompt"`
		NGen    int     `json:"n_gen"`
		AvgTS   float64 `json:"avg_ts"`
		Type    string  `json:"model_type"`
		Threads int     `json:"n_threads"`
	}
	if err := json.Unmarshal(out, &rows); err != nil {
		return nil, fmt.Errorf("llama-bench output: %w", err)
	}
	side := &benchSide{DecodeSteps: map[string]float64{}, DecodeTokens: tg}
	for _, r := range rows {
		switch {
		case r.NPrompt > 0 && r.NGen == 0:
			side.PrefillTPS = r.AvgTS
		case r.NGen > 0 && r.NPrompt == 0:
			side.DecodeTPS = r.AvgTS
			side.DecodeSteps["1"] = r.AvgTS
		}
		side.Weights = r.Type
		if gpu {
			side.Note = "(all layers on the GPU)"
		} else {
			side.Note = fmt.Sprintf("(%d threads)", r.Threads)
		}
	}
	return side, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

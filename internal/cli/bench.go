package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
	"github.com/mlx-genkit/genkit/steering"
	"github.com/spf13/cobra"
)

type benchSide struct {
	PrefillTPS     float64  `json:"prefill_tps"`
	DecodeTPS      float64  `json:"decode_tps"`
	PairDecodeTPS  *float64 `json:"pair_decode_tps,omitempty"`
	Sweep4TPS      *float64 `json:"sweep4_decode_tps,omitempty"`
	PeakMemoryMB   float64  `json:"peak_memory_mb"`
	DecodeTokens   int      `json:"decode_tokens,omitempty"`
	measuredPrompt int
}

func newBenchCmd() *cobra.Command {
	var src, python string
	var qBits int
	var asJSON bool
	var promptTokens, decodeTokens int
	cmd := &cobra.Command{
		Use:   "bench [--json]",
		Short: "Measure prefill and decode speed (one lane, base+steered pair, 4-lane sweep) beside mlx-lm on the same converted weights",
		RunE: func(cmd *cobra.Command, args []string) error {
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
			copts := engine.ConvertOptions{DType: mlx.Float32}
			if qBits > 0 {
				name = fmt.Sprintf("-mlx-q%dg64", qBits)
				copts = engine.ConvertOptions{QBits: qBits, QGroup: 64}
			}
			dir := filepath.Join(cache, "bench", strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))+name)
			if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err != nil {
				fmt.Fprintf(os.Stderr, "genkit bench: converting %s to %s\n", path, dir)
				if err := mlx.Do(func() error { return engine.Convert(path, dir, copts) }); err != nil {
					return err
				}
			}
			var m *engine.Model
			if err := mlx.Do(func() error {
				m, err = engine.LoadModel(dir, engine.LoadOptions{})
				return err
			}); err != nil {
				return err
			}
			defer freeModel(m)
			long, short := benchPrompts(m, promptTokens)
			g, err := benchGenkit(cmd.Context(), m, long, short, decodeTokens)
			if err != nil {
				return err
			}
			var lm *benchSide
			if python == "" {
				python = filepath.Join(os.Getenv("GENKIT_VENV"), "bin", "python")
				if os.Getenv("GENKIT_VENV") == "" {
					python = filepath.Join(".venv", "bin", "python")
				}
			}
			lm, lmErr := benchMLXLM(python, dir, long, short, decodeTokens)
			if lmErr != nil {
				warn("mlx-lm not measured: %v", lmErr)
			}
			report := map[string]any{"model": path, "weights": dir, "genkit": g, "mlx_lm": lm}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(report)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "model %s (converted to %s)\n%-26s %12s %12s\n", path, dir, "", "genkit", "mlx-lm")
			row := func(name string, a float64, b *float64) {
				bs := "n/a"
				if b != nil {
					bs = fmt.Sprintf("%.1f", *b)
				}
				fmt.Fprintf(w, "%-26s %12.1f %12s\n", name, a, bs)
			}
			var lp, ld, lmem *float64
			if lm != nil {
				lp, ld, lmem = &lm.PrefillTPS, &lm.DecodeTPS, &lm.PeakMemoryMB
			}
			row(fmt.Sprintf("prefill tokens/s (%d)", len(long)), g.PrefillTPS, lp)
			row("decode tokens/s, 1 lane", g.DecodeTPS, ld)
			row("decode tokens/s, pair", *g.PairDecodeTPS, nil)
			row("decode tokens/s, sweep 4", *g.Sweep4TPS, nil)
			row("peak memory MB", g.PeakMemoryMB, lmem)
			return nil
		},
	}
	cmd.Flags().StringVar(&src, "model", "", "model to convert and measure (default: the default model)")
	cmd.Flags().StringVar(&python, "python", "", "python with mlx-lm (default: the venv's)")
	cmd.Flags().IntVar(&promptTokens, "prompt-tokens", 512, "prefill prompt length")
	cmd.Flags().IntVar(&decodeTokens, "decode-tokens", 64, "tokens decoded per measurement")
	cmd.Flags().IntVar(&qBits, "q-bits", 0, "measure 4- or 8-bit quantized weights instead of dense fp32")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
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

func benchGenkit(ctx context.Context, m *engine.Model, long, short []int, n int) (*benchSide, error) {
	_ = mlx.Do(func() error { return mlx.ResetPeakMemory() })
	// Warm up.
	if _, _, err := m.Generate(ctx, engine.Request{Prompt: short, MaxNewTokens: 4, IgnoreEOS: true}); err != nil {
		return nil, err
	}
	t0 := time.Now()
	if _, _, err := m.Generate(ctx, engine.Request{Prompt: long, MaxNewTokens: 1, IgnoreEOS: true}); err != nil {
		return nil, err
	}
	side := &benchSide{PrefillTPS: float64(len(long)) / time.Since(t0).Seconds()}
	v := make([]float32, m.HiddenSize())
	for i := range v {
		v[i] = float32(i%7-3) * 0.01
	}
	for _, lanes := range []int{1, 2, 5} {
		var hook engine.Hook
		if lanes > 1 {
			scales := []float64{0, 1, 1, 1, 1}[:lanes]
			var inj *steering.Injection
			if err := mlx.Do(func() error {
				var err error
				inj, err = steering.NewInjection(m, map[int][]float32{m.NumLayers() / 2: v}, steering.InjectionOptions{Alpha: 1, LaneScale: scales})
				return err
			}); err != nil {
				return nil, err
			}
			defer mlx.Do(func() error { inj.Free(); return nil })
			hook = inj
		}
		_, st, err := m.Generate(ctx, engine.Request{Prompt: short, Lanes: lanes, MaxNewTokens: n, IgnoreEOS: true, Hook: hook})
		if err != nil {
			return nil, err
		}
		tps := float64((st.Steps-1)*lanes) / st.Decode.Seconds()
		switch lanes {
		case 1:
			side.DecodeTPS = tps
		case 2:
			side.PairDecodeTPS = &tps
		default:
			// The sweep: four steered lanes (and the base) in one batch.
			sweep := tps * 4 / 5
			side.Sweep4TPS = &sweep
		}
	}
	_ = mlx.Do(func() error {
		st, err := mlx.Memory()
		side.PeakMemoryMB = float64(st.Peak) / 1e6
		return err
	})
	return side, nil
}

func joinIDs(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return strings.Join(s, ",")
}

func benchMLXLM(python, dir string, long, short []int, n int) (*benchSide, error) {
	script := filepath.Join("scripts", "bench_mlx_lm.py")
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("%s not found (run from the repository root)", script)
	}
	out, err := exec.Command(python, script, "--model", dir, "--decode-tokens", strconv.Itoa(n),
		"--prompt-ids", joinIDs(long), "--short-ids", joinIDs(short)).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return nil, fmt.Errorf("%v: %s", err, lastLines(string(ee.Stderr), 3))
		}
		return nil, err
	}
	var side benchSide
	if err := json.Unmarshal(out, &side); err != nil {
		return nil, fmt.Errorf("mlx-lm output %q: %w", out, err)
	}
	return &side, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

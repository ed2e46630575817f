package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
)

// moeModels are the tiny Qwen3-MoE references: 8 experts / top 2 with a
// dense layer between sparse ones, and 16 experts / top 4 on every layer
// (the one llama.cpp's converter can write).
var moeModels = []string{"qwen3_moe", "qwen3_moe_all"}

// logitsRef is a reference.json's prompts and logits at every position.
type logitsRef struct {
	Prompts []struct {
		Tokens []int       `json:"tokens"`
		Logits [][]float64 `json:"logits"`
		Greedy []int       `json:"greedy"`
	} `json:"prompts"`
}

// checkLogits compares m's logits at every position of ref's prompts.
func checkLogits(t *testing.T, m *engine.Model, ref logitsRef, tol float64, what string) {
	t.Helper()
	for pi, p := range ref.Prompts {
		logits, _ := forward(t, m, p.Tokens, nil)
		d := maxAbsDiff(t, logits, p.Logits)
		if d > tol {
			t.Errorf("%s, prompt %d: logits differ by %g (max abs), want <= %g", what, pi, d, tol)
		}
		t.Logf("%s, prompt %d: max abs diff %.3g", what, pi, d)
	}
}

// TestMoEBothPathsMatchHF runs the tiny models with the rows grouped by
// expert before the products (the prefill path) and without (the decode
// path) on every call, so each path meets the prompts, the decode steps of
// two lanes and a left-padded batch, all against transformers.
func TestMoEBothPathsMatchHF(t *testing.T) {
	for _, name := range moeModels {
		for _, sortMin := range []int{1, 1 << 30} {
			t.Run(fmt.Sprintf("%s/sortMin=%d", name, sortMin), func(t *testing.T) {
				defer engine.SetMoESortMin(sortMin)()
				var ref tinyRef
				readJSON(t, filepath.Join(hfDir(name), "reference.json"), &ref)
				m := load(t, hfDir(name), engine.LoadOptions{})
				for pi, p := range ref.Prompts {
					logits, _ := forward(t, m, p.Tokens, nil)
					if d := maxAbsDiff(t, logits, p.Logits); d > 1e-4 {
						t.Errorf("prompt %d: logits differ from HF by %g", pi, d)
					}
					res, _, err := m.Generate(context.Background(), engine.Request{
						Prompt: p.Tokens, Lanes: 2, MaxNewTokens: len(p.Greedy), IgnoreEOS: true})
					if err != nil {
						t.Fatal(err)
					}
					for lane := range res {
						if fmt.Sprint(res[lane].Tokens) != fmt.Sprint(p.Greedy) {
							t.Errorf("prompt %d lane %d: greedy %v, HF %v", pi, lane, res[lane].Tokens, p.Greedy)
						}
					}
				}
				got := paddedLastLogits(t, m, ref.Padded.Prompts)
				if d := maxAbsDiff(t, got, ref.Padded.LastLogits); d > 1e-4 {
					t.Errorf("left-padded batch: last logits differ from HF by %g", d)
				}
			})
		}
	}
}

// rewrite loads dir's model.safetensors, lets edit change the tensors, and
// writes them with dir's config.json into a new directory.
func rewrite(t *testing.T, dir string, edit func(s *mlx.Scope, ts map[string]*mlx.Array) error) string {
	t.Helper()
	out := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	err = mlx.Do(context.Background(), func() error {
		ts, _, err := mlx.LoadSafetensors(filepath.Join(dir, "model.safetensors"))
		if err != nil {
			return err
		}
		s := mlx.NewScope()
		defer s.Close()
		for _, a := range ts {
			s.Track(a, nil)
		}
		if err := edit(s, ts); err != nil {
			return err
		}
		if err := s.Err(); err != nil {
			return err
		}
		return mlx.SaveSafetensors(filepath.Join(out, "model.safetensors"), ts, map[string]string{"format": "mlx"})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var projs = []string{"gate_proj", "up_proj", "down_proj"}

// toSwitchMLP replaces every per-expert tensor of layer prefixes p
// (model.layers.N.mlp.experts.E.P.weight) with mlx-lm's stacks
// (model.layers.N.mlp.switch_mlp.P.weight, [experts, out, in]).
func toSwitchMLP(s *mlx.Scope, ts map[string]*mlx.Array, layers, experts int) {
	for i := 0; i < layers; i++ {
		for _, p := range projs {
			name := func(e int) string { return fmt.Sprintf("model.layers.%d.mlp.experts.%d.%s.weight", i, e, p) }
			if ts[name(0)] == nil {
				continue // a dense layer
			}
			parts := make([]*mlx.Array, experts)
			for e := range parts {
				parts[e] = s.Track(mlx.ExpandDims(ts[name(e)], 0))
				delete(ts, name(e))
			}
			ts[fmt.Sprintf("model.layers.%d.mlp.switch_mlp.%s.weight", i, p)] = s.Track(mlx.Concatenate(0, parts...))
		}
	}
}

// TestMoEStackedDenseLayout: the tiny models rewritten in mlx-lm's
// stacked layout (switch_mlp) give transformers' logits.
func TestMoEStackedDenseLayout(t *testing.T) {
	for _, name := range moeModels {
		t.Run(name, func(t *testing.T) {
			cfg, err := engine.LoadConfig(filepath.Join(hfDir(name), "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			dir := rewrite(t, hfDir(name), func(s *mlx.Scope, ts map[string]*mlx.Array) error {
				toSwitchMLP(s, ts, cfg.NumLayers, cfg.NumExperts)
				for k := range ts {
					if strings.Contains(k, ".experts.") {
						return fmt.Errorf("per-expert tensor %s left", k)
					}
				}
				return nil
			})
			var ref logitsRef
			readJSON(t, filepath.Join(hfDir(name), "reference.json"), &ref)
			checkLogits(t, load(t, dir, engine.LoadOptions{}), ref, 1e-4, "switch_mlp")
		})
	}
}

// TestMoEMLXQuantizedMatchesMLXLM: mlx-lm's own 4-bit checkpoint of the
// tiny model (stacked experts with scales and biases, an 8-bit router)
// gives mlx-lm's logits, run quantized (gather_qmm) and expanded to dense.
func TestMoEMLXQuantizedMatchesMLXLM(t *testing.T) {
	dir := hfDir("qwen3_moe_mlx4")
	var ref logitsRef
	readJSON(t, filepath.Join(dir, "reference.json"), &ref)
	for _, mode := range []engine.WeightMode{engine.WeightsQuantized, engine.WeightsDense} {
		m := load(t, dir, engine.LoadOptions{Weights: mode})
		checkLogits(t, m, ref, 1e-4, fmt.Sprintf("weights mode %d (%s)", mode, m.WeightsDescription()))
	}
}

// TestMoEGGUF: llama.cpp's converter's GGUFs of the tiny all-sparse model
// (stacked blk.N.ffn_*_exps): the f32 file gives transformers' logits; the
// Q8_0 file gives transformers' logits for its weights dequantized by
// gguf-py, run quantized and dense.
func TestMoEGGUF(t *testing.T) {
	dir := hfDir("qwen3_moe_all")
	var ref, ref8 logitsRef
	readJSON(t, filepath.Join(dir, "reference.json"), &ref)
	readJSON(t, filepath.Join(dir, "reference_q8_0.json"), &ref8)
	m := load(t, filepath.Join(dir, "model.f32.gguf"), engine.LoadOptions{})
	c := m.Config
	if c.Architecture != "qwen3_moe" || c.NumExperts != 16 || c.NumExpertsPerTok != 4 || c.MoEIntermediateSize != 32 || !c.NormTopKProb {
		t.Fatalf("GGUF config: arch %s, %d experts, top %d, expert size %d, norm %v; want qwen3_moe, 16, 4, 32, true",
			c.Architecture, c.NumExperts, c.NumExpertsPerTok, c.MoEIntermediateSize, c.NormTopKProb)
	}
	checkLogits(t, m, ref, 1e-4, "f32 GGUF")
	for _, mode := range []engine.WeightMode{engine.WeightsQuantized, engine.WeightsDense} {
		m := load(t, filepath.Join(dir, "model.q8_0.gguf"), engine.LoadOptions{Weights: mode})
		checkLogits(t, m, ref8, 1e-4, fmt.Sprintf("Q8_0 GGUF, %s", m.WeightsDescription()))
	}
}

// loadErrWith loads dir with opts and returns the error (nil when it loads).
func loadErrWith(dir string, opts engine.LoadOptions) error {
	return mlx.Do(context.Background(), func() error {
		m, err := engine.LoadModel(dir, opts)
		if err == nil {
			m.Free()
		}
		return err
	})
}

// TestMoELoadGuards: malformed expert tensors are refused with errors that
// name the tensor; the well-formed checkpoints they are made from load
// (TestMoEStackedDenseLayout, TestMoEMLXQuantizedMatchesMLXLM and the
// parity tests accept them).
func TestMoELoadGuards(t *testing.T) {
	src := hfDir("qwen3_moe")
	const E = 8
	slice := func(s *mlx.Scope, a *mlx.Array, axis, n int) *mlx.Array {
		sh := a.Shape()
		hi := append([]int(nil), sh...)
		hi[axis] = n
		return s.Track(mlx.Slice(a, make([]int, len(sh)), hi, nil))
	}
	cases := []struct {
		name string
		dir  func() string
		opts engine.LoadOptions
		want []string
	}{
		{"stack with 7 experts", func() string {
			return rewrite(t, src, func(s *mlx.Scope, ts map[string]*mlx.Array) error {
				toSwitchMLP(s, ts, 3, E)
				k := "model.layers.2.mlp.switch_mlp.up_proj.weight"
				ts[k] = slice(s, ts[k], 0, 7)
				return nil
			})
		}, engine.LoadOptions{}, []string{"model.layers.2.mlp.switch_mlp.up_proj.weight", "[7 32 64]", "[8 32 64]"}},
		{"quantized stack with scales and biases of too few rows", func() string {
			return rewrite(t, hfDir("qwen3_moe_mlx4"), func(s *mlx.Scope, ts map[string]*mlx.Array) error {
				for _, k := range []string{"model.layers.0.mlp.switch_mlp.down_proj.scales", "model.layers.0.mlp.switch_mlp.down_proj.biases"} {
					ts[k] = slice(s, ts[k], 1, 63)
				}
				return nil
			})
		}, engine.LoadOptions{Weights: engine.WeightsQuantized}, []string{"quantized expert stack model.layers.0.mlp.switch_mlp.down_proj"}},
		{"quantized stack unlike the config's quantization for it", func() string {
			dir := rewrite(t, hfDir("qwen3_moe_mlx4"), func(s *mlx.Scope, ts map[string]*mlx.Array) error { return nil })
			p := filepath.Join(dir, "config.json")
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			old := `"mode": "affine",`
			edited := strings.Replace(string(data), old, old+`
    "model.layers.0.mlp.switch_mlp.down_proj": {"group_size": 32, "bits": 8},`, 1)
			if edited == string(data) {
				t.Fatal("could not edit config.json")
			}
			if err := os.WriteFile(p, []byte(edited), 0o644); err != nil {
				t.Fatal(err)
			}
			return dir
		}, engine.LoadOptions{Weights: engine.WeightsQuantized}, []string{"model.layers.0.mlp.switch_mlp.down_proj: config says 8 bits / group 32, tensors say 4 / 32"}},
		{"per-expert tensor missing", func() string {
			return rewrite(t, src, func(s *mlx.Scope, ts map[string]*mlx.Array) error {
				delete(ts, "model.layers.2.mlp.experts.5.up_proj.weight")
				return nil
			})
		}, engine.LoadOptions{}, []string{"model.layers.2.mlp.experts.5.up_proj.weight is missing"}},
		{"per-expert tensor of another shape", func() string {
			return rewrite(t, src, func(s *mlx.Scope, ts map[string]*mlx.Array) error {
				k := "model.layers.0.mlp.experts.3.gate_proj.weight"
				ts[k] = slice(s, ts[k], 0, 31)
				return nil
			})
		}, engine.LoadOptions{}, []string{"model.layers.0.mlp.experts.3.gate_proj.weight has shape [31 64], expert 0's has [32 64]"}},
		{"no expert tensors", func() string {
			return rewrite(t, src, func(s *mlx.Scope, ts map[string]*mlx.Array) error {
				for k := range ts {
					if strings.HasPrefix(k, "model.layers.2.mlp.experts.") {
						delete(ts, k)
					}
				}
				return nil
			})
		}, engine.LoadOptions{}, []string{"layer 2 is a mixture of experts but has no expert tensors", "model.layers.2.mlp.switch_mlp.gate_proj.weight"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := loadErrWith(tc.dir(), tc.opts)
			if err == nil {
				t.Fatal("loaded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestMoEParamCount: Config.ParamCount equals the number of values the
// tiny models' checkpoints hold (experts only in sparse layers, routers,
// q/k norms).
func TestMoEParamCount(t *testing.T) {
	for _, name := range append([]string{"qwen3_headdim"}, moeModels...) {
		cfg, err := engine.LoadConfig(filepath.Join(hfDir(name), "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := mlx.Do(context.Background(), func() error {
			ts, _, err := mlx.LoadSafetensors(filepath.Join(hfDir(name), "model.safetensors"))
			if err != nil {
				return err
			}
			for _, a := range ts {
				n += int64(a.Size())
				a.Free()
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got := cfg.ParamCount(); got != n {
			t.Errorf("%s: ParamCount %d, checkpoint holds %d values", name, got, n)
		}
	}
}

package engine_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
	"github.com/mlx-genkit/genkit/sampling"
)

// tinyRef is reference.json written by scripts/reference/make_engine_refs.py.
type tinyRef struct {
	Transformers string `json:"transformers"`
	Prompts      []struct {
		Tokens []int                  `json:"tokens"`
		Logits [][]float64            `json:"logits"`
		Hidden map[string][][]float64 `json:"hidden"`
		Greedy []int                  `json:"greedy"`
	} `json:"prompts"`
	Padded struct {
		Prompts    [][]int     `json:"prompts"`
		LastLogits [][]float64 `json:"last_logits"`
	} `json:"padded"`
}

var tinyModels = []string{"llama_tied", "llama3_rope", "qwen2_bias", "qwen3_headdim",
	"mistral_window", "granite_mult", "olmo2_post", "phi3_fused", "gemma2_caps", "gemma3_local", "qwen3_moe"}

// TestTinyModelsMatchHF compares logits at every position, every block's
// output and greedy continuations with transformers on seeded random-weight
// models of each architecture.
func TestTinyModelsMatchHF(t *testing.T) {
	for _, name := range tinyModels {
		t.Run(name, func(t *testing.T) {
			var ref tinyRef
			readJSON(t, filepath.Join(hfDir(name), "reference.json"), &ref)
			m := load(t, hfDir(name), engine.LoadOptions{})
			layers := make([]int, m.NumLayers())
			for i := range layers {
				layers[i] = i
			}
			for pi, p := range ref.Prompts {
				logits, hidden := forward(t, m, p.Tokens, layers)
				if d := maxAbsDiff(t, logits, p.Logits); d > 1e-4 {
					t.Errorf("prompt %d: logits differ from HF by %g (max abs), want <= 1e-4", pi, d)
				}
				for l := range layers {
					want := p.Hidden[strconv.Itoa(l)]
					if d := maxAbsDiff(t, hidden[l], want); d > 1e-4 {
						t.Errorf("prompt %d: block %d output differs from HF by %g", pi, l, d)
					}
				}
				for _, chunk := range []int{0, 5} {
					res, _, err := m.Generate(context.Background(), engine.Request{
						Prompt: p.Tokens, Lanes: 2, MaxNewTokens: len(p.Greedy), IgnoreEOS: true, PrefillChunk: chunk})
					if err != nil {
						t.Fatal(err)
					}
					for lane := range res {
						if fmt.Sprint(res[lane].Tokens) != fmt.Sprint(p.Greedy) {
							t.Errorf("prompt %d lane %d chunk %d: greedy %v, HF %v", pi, lane, chunk, res[lane].Tokens, p.Greedy)
						}
					}
				}
			}
			// Left-padded batch of prompts of different lengths.
			got := paddedLastLogits(t, m, ref.Padded.Prompts)
			if d := maxAbsDiff(t, got, ref.Padded.LastLogits); d > 1e-4 {
				t.Errorf("left-padded batch: last logits differ from HF by %g", d)
			}
		})
	}
}

func paddedLastLogits(t *testing.T, m *engine.Model, prompts [][]int) [][]float32 {
	ids, pads, L := leftPad(prompts)
	var out [][]float32
	err := mlx.Do(context.Background(), func() error {
		x, err := mlx.FromInt32s(ids, len(prompts), L)
		if err != nil {
			return err
		}
		defer x.Free()
		cache := m.NewCache(len(prompts))
		defer cache.Free()
		res, err := m.Forward(x, cache, engine.ForwardOptions{Padding: pads, LastOnly: true})
		if err != nil {
			return err
		}
		defer res.Free()
		v, err := res.Logits.Float32s()
		out = split(v, m.Config.VocabSize)
		return err
	})

	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestConfig4xKeys loads the llama3-scaled model with its config rewritten
// in the transformers 4.x style (rope_theta and rope_scaling at top level).
func TestConfig4xKeys(t *testing.T) {
	dir := t.TempDir()
	src := hfDir("llama3_rope")
	cfg, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	old := strings.Replace(string(cfg), `"rope_parameters": {`, `"rope_theta": 500000.0, "rope_scaling": {`, 1)
	old = strings.Replace(old, `"rope_theta": 500000.0,
    "rope_type"`, `"rope_type"`, 1)
	if old == string(cfg) || strings.Count(old, "rope_theta") != 1 {
		t.Fatalf("could not rewrite config:\n%s", old)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(mustAbs(t, src), "model.safetensors"), filepath.Join(dir, "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	c, err := engine.LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if c.RopeTheta != 500000 || c.RopeScaling == nil || c.RopeScaling.Type != "llama3" || c.RopeScaling.Factor != 8 {
		t.Fatalf("parsed %+v / %+v", c, c.RopeScaling)
	}
	var ref tinyRef
	readJSON(t, filepath.Join(src, "reference.json"), &ref)
	m := load(t, dir, engine.LoadOptions{})
	logits, _ := forward(t, m, ref.Prompts[2].Tokens, nil)
	if d := maxAbsDiff(t, logits, ref.Prompts[2].Logits); d > 1e-4 {
		t.Fatalf("4.x-style config: logits differ from HF by %g", d)
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type smolRef struct {
	TopK    int `json:"topk"`
	Prompts []struct {
		Text        string    `json:"text"`
		Tokens      []int     `json:"tokens"`
		LogSumExp   float64   `json:"logsumexp"`
		TopIDs      []int     `json:"top_ids"`
		TopLogProbs []float64 `json:"top_logprobs"`
	} `json:"prompts"`
}

// TestSmolLM2MatchesHF compares next-token distributions of 20 prompts with
// HF running the same GGUF weights dequantized to fp32 (by an independent
// numpy decoder).
func TestSmolLM2MatchesHF(t *testing.T) {
	var ref smolRef
	readJSON(t, hfDir("smollm2_dequant_fp32.json"), &ref)
	path := defaultModel(t)
	for _, tc := range []struct {
		name  string
		mode  engine.WeightMode
		bound float64
	}{
		{"dense fp32", engine.WeightsDense, 1e-3},
		{"Q4 through quantized_matmul", engine.WeightsQuantized, 0.05},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := load(t, path, engine.LoadOptions{Weights: tc.mode})
			var sum, worst float64
			agree := 0
			for _, p := range ref.Prompts {
				logits, _ := forward(t, m, p.Tokens, nil)
				last := logits[len(logits)-1]
				kl := sampling.KLFromTop(p.TopIDs, p.TopLogProbs, last)
				sum += kl
				worst = math.Max(worst, kl)
				best := 0
				for j := range last {
					if last[j] > last[best] {
						best = j
					}
				}
				if best == p.TopIDs[0] {
					agree++
				}
			}
			mean := sum / float64(len(ref.Prompts))
			t.Logf("%s: mean KL(HF || genkit) = %.3g, worst %.3g, argmax agrees on %d/%d prompts", tc.name, mean, worst, agree, len(ref.Prompts))
			if mean > tc.bound || math.IsNaN(mean) {
				t.Fatalf("mean KL %g exceeds %g", mean, tc.bound)
			}
		})
	}
}

// TestFamilyGGUFsMatchHF loads the tiny families as llama.cpp's converter
// writes them (F32 GGUFs from scripts/reference/make_family_ggufs.py: its
// tensor names, Q/K permutations, gemma's norms with the one added, phi3's
// fused tensors, the metadata it keeps) and compares logits at every
// position, greedy continuations and every block with the transformers
// reference of the same weights. llama.cpp writes Mistral as "llama"
// without its sliding window, so that file is compared on prompts inside
// the window only.
func TestFamilyGGUFsMatchHF(t *testing.T) {
	within := map[string]int{"mistral_window": 8}
	for _, name := range []string{"llama_tied", "mistral_window", "granite_mult", "olmo2_post", "phi3_fused", "gemma2_caps"} {
		t.Run(name, func(t *testing.T) {
			var ref tinyRef
			readJSON(t, filepath.Join(hfDir(name), "reference.json"), &ref)
			m := load(t, filepath.Join("testdata", "gguf_families", name+".gguf"), engine.LoadOptions{})
			layers := make([]int, m.NumLayers())
			for i := range layers {
				layers[i] = i
			}
			compared := 0
			for pi, p := range ref.Prompts {
				w := within[name]
				if w > 0 && len(p.Tokens) > w {
					continue
				}
				compared++
				logits, hidden := forward(t, m, p.Tokens, layers)
				if d := maxAbsDiff(t, logits, p.Logits); d > 1e-4 {
					t.Errorf("prompt %d: GGUF logits differ from HF by %g (max abs), want <= 1e-4", pi, d)
				}
				for l := range layers {
					if d := maxAbsDiff(t, hidden[l], p.Hidden[strconv.Itoa(l)]); d > 1e-4 {
						t.Errorf("prompt %d: block %d output differs from HF by %g", pi, l, d)
					}
				}
				if w > 0 && len(p.Tokens)+len(p.Greedy) > w {
					continue
				}
				res, _, err := m.Generate(context.Background(), engine.Request{Prompt: p.Tokens, MaxNewTokens: len(p.Greedy), IgnoreEOS: true})
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(res[0].Tokens) != fmt.Sprint(p.Greedy) {
					t.Errorf("prompt %d: greedy %v, HF %v", pi, res[0].Tokens, p.Greedy)
				}
			}
			if compared == 0 {
				t.Fatal("no prompt compared")
			}
		})
	}
}

package sampling_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/sampling"
)

// hfRef is hf_sampling.json from scripts/reference/make_sampling_refs.py:
// generate() runs with output_logits/output_scores, so each step has the raw
// logits, the ids HF's processors saw and HF's processed scores.
type hfRef struct {
	EOS     []int `json:"eos"`
	Configs map[string]struct {
		Config json.RawMessage `json:"config"`
		Runs   []struct {
			Prompt   []int `json:"prompt"`
			Sequence []int `json:"sequence"`
			Steps    []struct {
				InputIDs []int `json:"input_ids"`
				Logits   []num `json:"logits"`
				Scores   []num `json:"scores"`
			} `json:"steps"`
		} `json:"runs"`
	} `json:"configs"`
	Beams []struct {
		Config    json.RawMessage `json:"config"`
		Prompt    []int           `json:"prompt"`
		Sequences [][]int         `json:"sequences"`
		Scores    []float64       `json:"sequences_scores"`
	} `json:"beams"`
}

// num reads a JSON number or one of "inf", "-inf", "nan".
type num float64

func (n *num) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"inf"`:
		*n = num(math.Inf(1))
	case `"-inf"`:
		*n = num(math.Inf(-1))
	case `"nan"`:
		*n = num(math.NaN())
	default:
		var f float64
		if err := json.Unmarshal(b, &f); err != nil {
			return err
		}
		*n = num(f)
	}
	return nil
}

func loadRef(t testing.TB) *hfRef {
	t.Helper()
	data, err := os.ReadFile("testdata/hf_sampling.json")
	if err != nil {
		t.Fatal(err)
	}
	var r hfRef
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func hfConfig(t testing.TB, raw json.RawMessage, eos []int) *sampling.GenerationConfig {
	t.Helper()
	cfg := &sampling.GenerationConfig{}
	if err := cfg.Merge(raw); err != nil {
		t.Fatal(err)
	}
	cfg.EOSTokenID = eos
	if cfg.MaxNewTokens == nil && cfg.MaxLength == nil {
		cfg.MaxNewTokens = sampling.Ptr(8)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func toF32(xs []num) []float32 {
	out := make([]float32, len(xs))
	for i, x := range xs {
		out[i] = float32(x)
	}
	return out
}

// TestChainMatchesHF runs genkit's processor chain on HF's raw logits and
// token histories and compares with HF's processed scores: values within
// 1e-6 and exactly the same tokens kept (finite).
func TestChainMatchesHF(t *testing.T) {
	ref := loadRef(t)
	if len(ref.Configs) < 12 {
		t.Fatalf("only %d configs", len(ref.Configs))
	}
	names := make([]string, 0, len(ref.Configs))
	for n := range ref.Configs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		c := ref.Configs[name]
		t.Run(name, func(t *testing.T) {
			cfg := hfConfig(t, c.Config, ref.EOS)
			steps := 0
			for _, run := range c.Runs {
				chain := sampling.BuildChain(cfg, ref.EOS, len(run.Prompt))
				for si, st := range run.Steps {
					scores := toF32(st.Logits)
					chain.Process(&sampling.Lane{IDs: st.InputIDs, PromptLen: len(run.Prompt)}, scores)
					for i, w := range st.Scores {
						g := float64(scores[i])
						wf := float64(w)
						if math.IsInf(wf, 0) || math.IsNaN(wf) || math.IsInf(g, 0) || math.IsNaN(g) {
							if !(g == wf || math.IsNaN(g) && math.IsNaN(wf)) {
								t.Fatalf("prompt %v step %d token %d: genkit %g, HF %g (chain %v)", run.Prompt, si, i, g, wf, chain.Names())
							}
							continue
						}
						if d := math.Abs(g - wf); d > 1e-6*math.Max(1, math.Abs(wf)) {
							t.Fatalf("prompt %v step %d token %d: genkit %g, HF %g (diff %g; chain %v)", run.Prompt, si, i, g, wf, d, chain.Names())
						}
					}
					steps++
				}
			}
			if steps == 0 {
				t.Fatal("no steps compared")
			}
		})
	}
}

// TestEachProcessorAlone checks single processors on hand-computed cases.
func TestEachProcessorAlone(t *testing.T) {
	inf := math.Inf(-1)
	cases := []struct {
		name string
		p    sampling.Processor
		ids  []int
		in   []float64
		want []float64
	}{
		{"repetition", &sampling.RepetitionPenalty{Penalty: 2}, []int{0, 1, 1}, []float64{2, -2, 3}, []float64{1, -4, 3}},
		{"no-repeat 2", &sampling.NoRepeatNGram{N: 2}, []int{1, 2, 1}, []float64{0, 0, 0}, []float64{0, 0, inf}},
		{"bad words", &sampling.BadWords{Words: [][]int{{0}, {2, 1}}}, []int{5, 2}, []float64{1, 1, 1}, []float64{inf, inf, 1}},
		{"temperature", &sampling.Temperature{T: 0.5}, nil, []float64{1, -2, 0}, []float64{2, -4, 0}},
		{"top-k 2", &sampling.TopK{K: 2, MinKeep: 1}, nil, []float64{3, 1, 2, 0}, []float64{3, inf, 2, inf}},
		{"top-p", &sampling.TopP{P: 0.5, MinKeep: 1}, nil, []float64{math.Log(0.6), math.Log(0.3), math.Log(0.1)}, []float64{math.Log(0.6), inf, inf}},
		{"min-p", &sampling.MinP{MinP: 0.4, MinKeep: 1}, nil, []float64{math.Log(0.5), math.Log(0.3), math.Log(0.2)}, []float64{math.Log(0.5), math.Log(0.3), inf}},
		{"epsilon", &sampling.Epsilon{E: 0.25, MinKeep: 1}, nil, []float64{math.Log(0.5), math.Log(0.3), math.Log(0.2)}, []float64{math.Log(0.5), math.Log(0.3), inf}},
		{"presence+frequency", &sampling.FrequencyPresence{Frequency: 0.5, Presence: 1}, []int{9, 0, 0, 1}, []float64{0, 0, 0}, []float64{-2, -1.5, 0}},
		{"suppress", &sampling.Suppress{IDs: []int{1}}, nil, []float64{0, 0}, []float64{0, inf}},
	}
	for _, c := range cases {
		scores := make([]float32, len(c.in))
		for i, v := range c.in {
			scores[i] = float32(v)
		}
		prompt := 0
		if c.name == "presence+frequency" {
			prompt = 1
		}
		c.p.Process(&sampling.Lane{IDs: c.ids, PromptLen: prompt}, scores)
		for i := range scores {
			if w := float32(c.want[i]); scores[i] != w && math.Abs(float64(scores[i]-w)) > 1e-6 {
				t.Errorf("%s: scores %v, want %v", c.name, scores, c.want)
				break
			}
		}
	}
}

func TestValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		json, field string
	}{
		{`{"do_sample": true, "temperature": 0}`, "temperature"},
		{`{"top_p": 1.5}`, "top_p"},
		{`{"num_beams": 2, "num_return_sequences": 3}`, "num_return_sequences"},
		{`{"repetition_penalty": -1}`, "repetition_penalty"},
		{`{"min_p": 2}`, "min_p"},
	} {
		c := &sampling.GenerationConfig{}
		if err := c.Merge([]byte(tc.json)); err != nil {
			t.Fatal(err)
		}
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v", tc.json, err)
		}
	}
	c := &sampling.GenerationConfig{}
	if err := c.Merge([]byte(`{"temperature": "hot"}`)); err == nil {
		t.Error("a string temperature was accepted")
	}
}

func TestConfigRoundTripAndLayering(t *testing.T) {
	model := []byte(`{"do_sample": true, "temperature": 0.6, "top_p": 0.9, "eos_token_id": [2, 7], "transformers_version": "4.47.0", "watermarking_config": {}}`)
	user := []byte(`{"temperature": 1.2, "top_k": 0, "early_stopping": "never", "sequence_bias": [[[5, 6], -1.5]]}`)
	c := &sampling.GenerationConfig{}
	if err := c.Merge(model); err != nil {
		t.Fatal(err)
	}
	if err := c.Merge(user); err != nil {
		t.Fatal(err)
	}
	if c.Temp() != 1.2 || *c.TopP != 0.9 || c.K() != 0 || !c.Sampling() || fmt.Sprint(c.EOSTokenID) != "[2 7]" || !c.EarlyStopping.Never {
		t.Fatalf("layered config %+v", c)
	}
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "watermarking_config") {
		t.Fatalf("warnings %v", w)
	}
	path := t.TempDir() + "/generation_config.json"
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := sampling.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(c)
	b, _ := json.Marshal(back)
	if string(a) != string(b) {
		t.Fatalf("round trip:\n%s\n%s", a, b)
	}
	// Unset fields take HF's effective defaults.
	d := &sampling.GenerationConfig{}
	if d.Sampling() || d.Temp() != 1 || d.K() != 50 || d.Beams() != 1 || d.MaxNew(5) != 15 {
		t.Fatal("effective defaults")
	}
}

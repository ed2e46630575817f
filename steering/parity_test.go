package steering_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/steering"
)

// hfSteering is hf_steering.json from scripts/reference/make_steering_refs.py:
// a PyTorch forward hook adds alpha*v to model.model.layers[L]'s output.
type hfSteering struct {
	Prompt []int   `json:"prompt"`
	Alpha  float64 `json:"alpha"`
	Models map[string]struct {
		Vector     []float32   `json:"vector"`
		BaseLogits [][]float64 `json:"base_logits"`
		WUV        []float64   `json:"w_u_v"`
		WUNormV    []float64   `json:"w_u_norm_v"`
		Runs       []struct {
			Layer  int         `json:"layer"`
			Scope  string      `json:"scope"`
			Logits [][]float64 `json:"logits"`
			Greedy []int       `json:"greedy"`
		} `json:"runs"`
	} `json:"models"`
}

func loadModel(t testing.TB, path string) *engine.Model {
	t.Helper()
	var m *engine.Model
	if err := mlx.Do(context.Background(), func() error {
		var err error
		m, err = engine.LoadModel(path, engine.LoadOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mlx.Do(context.Background(), func() error { m.Free(); return nil }) })
	return m
}

func maxDiff(got []float32, want []float64) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var d float64
	for i := range got {
		d = math.Max(d, math.Abs(float64(got[i])-want[i]))
	}
	if math.IsNaN(d) {
		return math.Inf(1)
	}
	return d
}

// prefill runs the prompt in two lanes (base, steered) with hook and returns
// every position's logits per lane.
func prefill(t *testing.T, m *engine.Model, prompt []int, hook engine.Hook) [2][][]float32 {
	lanes, err := m.Logits(prompt, 2, true, hook)
	if err != nil {
		t.Fatal(err)
	}
	return [2][][]float32{lanes[0], lanes[1]}
}

func TestSteeringMatchesHFHook(t *testing.T) {
	data, err := os.ReadFile("testdata/hf_steering.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref hfSteering
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	for name, mr := range ref.Models {
		t.Run(name, func(t *testing.T) {
			m := loadModel(t, filepath.Join("..", "engine", "testdata", "hf", name))
			plain, _, err := m.Generate(context.Background(), engine.Request{Prompt: ref.Prompt, MaxNewTokens: 10, IgnoreEOS: true})
			if err != nil {
				t.Fatal(err)
			}
			layersSeen := map[int]bool{}
			for _, run := range mr.Runs {
				layersSeen[run.Layer] = true
				scope, err := steering.ParseScope(run.Scope)
				if err != nil {
					t.Fatal(err)
				}
				var inj *steering.Injection
				if err := mlx.Do(context.Background(), func() error {
					inj, err = steering.NewInjection(m, map[int][]float32{run.Layer: mr.Vector}, steering.InjectionOptions{Alpha: ref.Alpha, Scope: scope})
					return err
				}); err != nil {
					t.Fatal(err)
				}
				lanes := prefill(t, m, ref.Prompt, inj)
				for p := range ref.Prompt {
					if d := maxDiff(lanes[1][p], run.Logits[p]); d > 1e-4 {
						t.Errorf("layer %d scope %s position %d: steered logits differ from HF by %g", run.Layer, run.Scope, p, d)
					}
					if d := maxDiff(lanes[0][p], mr.BaseLogits[p]); d > 1e-4 {
						t.Errorf("layer %d scope %s position %d: the base lane differs from an unsteered run by %g", run.Layer, run.Scope, p, d)
					}
				}
				res, _, err := m.Generate(context.Background(), engine.Request{Prompt: ref.Prompt, Lanes: 2, MaxNewTokens: 10, IgnoreEOS: true, Hook: inj})
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(res[1].Tokens) != fmt.Sprint(run.Greedy) {
					t.Errorf("layer %d scope %s: steered greedy %v, HF %v", run.Layer, run.Scope, res[1].Tokens, run.Greedy)
				}
				if fmt.Sprint(res[0].Tokens) != fmt.Sprint(plain[0].Tokens) {
					t.Errorf("layer %d scope %s: base lane %v, unsteered run %v", run.Layer, run.Scope, res[0].Tokens, plain[0].Tokens)
				}
				_ = mlx.Do(context.Background(), func() error { inj.Free(); return nil })
			}
			if len(layersSeen) < 3 {
				t.Fatalf("only layers %v compared", layersSeen)
			}
			// Logit bias: W_U v, with and without the final norm.
			var wuv, wunv []float32
			if err := mlx.Do(context.Background(), func() error {
				var err error
				if wuv, err = steering.UnembedVector(m, mr.Vector, false); err != nil {
					return err
				}
				wunv, err = steering.UnembedVector(m, mr.Vector, true)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(wuv, mr.WUV); d > 1e-4 {
				t.Errorf("W_U v differs from HF by %g", d)
			}
			if d := maxDiff(wunv, mr.WUNormV); d > 1e-4 {
				t.Errorf("W_U norm(v) differs from HF by %g", d)
			}
			// The logit-bias path: genkit's logits through the bias processor
			// equal HF's logits + alpha * W_U v.
			lanes := prefill(t, m, ref.Prompt, nil)
			last := append([]float32(nil), lanes[0][len(ref.Prompt)-1]...)
			bias := &steering.LogitBias{Direction: wuv, Alpha: ref.Alpha}
			bias.Process(&sampling.Lane{IDs: ref.Prompt, PromptLen: len(ref.Prompt)}, last)
			want := make([]float64, len(last))
			for i := range want {
				want[i] = mr.BaseLogits[len(ref.Prompt)-1][i] + ref.Alpha*mr.WUV[i]
			}
			if d := maxDiff(last, want); d > 1e-4 {
				t.Errorf("logit-bias path differs from HF logits + alpha W_U v by %g", d)
			}
		})
	}
}

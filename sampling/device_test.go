package sampling_test

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
	"github.com/mlx-genkit/genkit/sampling"
)

// TestDeviceChainMatchesHF runs the device chain on HF's raw logits and
// token histories for every reference config it supports and compares with
// HF's processed scores (the host chain's tolerance: 1e-6 relative, the same
// tokens kept). Configs with host-only processors must be refused.
func TestDeviceChainMatchesHF(t *testing.T) {
	ref := loadRef(t)
	supported := map[string]bool{"greedy": true, "temperature": true, "top_k": true, "top_p": true, "min_p": true, "repetition": true}
	for name, c := range ref.Configs {
		cfg := hfConfig(t, c.Config, ref.EOS)
		chain, why := sampling.NewDeviceChain(cfg, ref.EOS, len(c.Runs[0].Prompt), 1, nil)
		if !supported[name] {
			if chain != nil {
				t.Errorf("%s: the device chain accepted a config with host-only processors", name)
			}
			continue
		}
		if chain == nil {
			t.Fatalf("%s: refused (%s)", name, why)
		}
		steps := 0
		for _, run := range c.Runs {
			for si, st := range run.Steps {
				V := len(st.Logits)
				var got []float32
				err := mlx.Do(context.Background(), func() error {
					state, err := chain.NewState([][]int{st.InputIDs}, V, nil)
					if err != nil {
						return err
					}
					defer state.Free()
					s := mlx.NewScope()
					defer s.Close()
					x := s.Track(mlx.FromFloat32s(toF32(st.Logits), 1, V))
					out := chain.Process(s, x, state)
					if err := s.Err(); err != nil {
						return err
					}
					got, err = out.Float32s()
					return err
				})

				if err != nil {
					t.Fatal(err)
				}
				for i, w := range st.Scores {
					g, wf := float64(got[i]), float64(w)
					if math.IsInf(wf, 0) || math.IsInf(g, 0) {
						if g != wf {
							t.Fatalf("%s prompt %v step %d token %d: device %g, HF %g", name, run.Prompt, si, i, g, wf)
						}
						continue
					}
					if d := math.Abs(g - wf); d > 1e-6*math.Max(1, math.Abs(wf)) {
						t.Fatalf("%s prompt %v step %d token %d: device %g, HF %g", name, run.Prompt, si, i, g, wf)
					}
				}
				steps++
			}
		}
		if steps == 0 {
			t.Fatalf("%s: no steps compared", name)
		}
	}
}

// TestDevicePathSameTokens decodes the tiny model through the pipelined
// device loop and through the synchronous host loop: the same tokens for
// greedy, penalties, and seeded sampling (own and shared draws, 3 lanes).
func TestDevicePathSameTokens(t *testing.T) {
	m := tinyModel(t)
	seed := sampling.Ptr(uint64(11))
	cases := map[string]*sampling.GenerationConfig{
		"greedy":          {},
		"repetition":      {RepetitionPenalty: sampling.Ptr(1.4)},
		"freq_presence":   {FrequencyPenalty: sampling.Ptr(0.5), PresencePenalty: sampling.Ptr(0.3)},
		"temperature":     {DoSample: sampling.Ptr(true), TopK: sampling.Ptr(0), Temperature: sampling.Ptr(1.5), Seed: seed},
		"top_k_top_p":     {DoSample: sampling.Ptr(true), TopK: sampling.Ptr(20), TopP: sampling.Ptr(0.8), Seed: seed},
		"min_p_rep":       {DoSample: sampling.Ptr(true), TopK: sampling.Ptr(0), MinP: sampling.Ptr(0.05), RepetitionPenalty: sampling.Ptr(1.2), Seed: seed},
		"hf_default_topk": {DoSample: sampling.Ptr(true), Seed: seed},
	}
	for name, cfg := range cases {
		for _, shared := range []bool{false, true} {
			run := func(sync bool) [][]int {
				s, err := sampling.NewSampler(cfg, 3, sampling.SamplerOptions{SharedDraws: shared})
				if err != nil {
					t.Fatal(err)
				}
				return laneTokens(t, m, engine.Request{Prompt: []int{1, 20, 21, 22}, Lanes: 3,
					MaxNewTokens: 24, IgnoreEOS: true, Chooser: s, Sync: sync})
			}
			host, dev := run(true), run(false)
			if fmt.Sprint(host) != fmt.Sprint(dev) {
				t.Errorf("%s (shared %v): device %v, host %v", name, shared, dev, host)
			}
		}
	}
}

// TestDevicePathRefusesHostProcessors: a config with a host-only processor
// (no_repeat_ngram_size) decodes through the host loop, and an observer of
// processed scores forces it too.
func TestDevicePathRefusesHostProcessors(t *testing.T) {
	cfg := &sampling.GenerationConfig{NoRepeatNgramSize: sampling.Ptr(2)}
	s, err := sampling.NewSampler(cfg, 1, sampling.SamplerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ok bool
	_ = mlx.Do(context.Background(), func() error { ok, err = s.StartDevice([][]int{{1, 2}}, 64); return err })
	if ok || err != nil {
		t.Fatalf("no_repeat_ngram_size: StartDevice = %v, %v; want false", ok, err)
	}
	s2, _ := sampling.NewSampler(&sampling.GenerationConfig{}, 1, sampling.SamplerOptions{})
	s2.Observe = func(int, int, []float32) {}
	_ = mlx.Do(context.Background(), func() error { ok, err = s2.StartDevice([][]int{{1, 2}}, 64); return err })
	if ok {
		t.Fatal("an observed sampler must use the host path")
	}
}

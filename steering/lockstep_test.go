package steering

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/sampling"
)

// TestJobRoundTrip: a job survives its broadcast (JSON) exactly, with
// every field of a run, a plan and the generation settings set, so the
// followers run what rank 0 runs; a job of an unknown kind or without its
// inputs is refused.
func TestJobRoundTrip(t *testing.T) {
	layer, alpha := -2, 1.25
	plan := Plan{Preset: "pirate", Vector: "v.gguf", Method: MethodPCA, Layer: &layer, Alpha: &alpha,
		Schedule: Schedule{Kind: "ramp", From: 0.5, To: 2, Steps: 16}, Scope: ScopeGenerated, Mode: ModeLogitBias, Normalize: true, FinalNorm: true}
	gen := &sampling.GenerationConfig{MaxNewTokens: sampling.Ptr(33), DoSample: sampling.Ptr(true), Temperature: sampling.Ptr(0.7),
		TopK: sampling.Ptr(40), TopP: sampling.Ptr(0.9), MinP: sampling.Ptr(0.05), RepetitionPenalty: sampling.Ptr(1.1),
		NoRepeatNgramSize: sampling.Ptr(3), EOSTokenID: sampling.IDs{2, 7}, StopStrings: sampling.Strings{"\n\n", "END"},
		MaxTime: sampling.Ptr(1.5), FrequencyPenalty: sampling.Ptr(0.2), PresencePenalty: sampling.Ptr(0.1), Seed: sampling.Ptr(uint64(1<<63 + 12345))}
	run := Run{
		Prompt: engine.Prompt{Text: "Tell me", System: "Be brief", Chat: true,
			Messages:   []engine.Message{{Role: "user", Content: "hi"}, {Role: "assistant", Content: "hello ☃"}},
			ChatKwargs: engine.ChatKwargs{"enable_thinking": json.RawMessage(`false`)}},
		Plan: &plan, Gen: gen, LaneScales: []float64{0, 0.5, 1, 1.5, 2}, SharedDraws: true, IgnoreEOS: true, Sync: true,
	}
	jobs := []job{
		{Kind: jobDecode, Run: &run, Observe: observed{Progress: true, Token: true, Scores: true}},
		{Kind: jobDecode, Run: &Run{Prompt: engine.Prompt{IDs: []int{1, 2, 3}}, Steering: &Resolved{Plan: plan, Mode: ModeResidual,
			Layers: []int{1, 3}, Layer: 1, Alpha: 0.1 + 0.2, Vectors: map[int][]float32{1: {0.1, -3e-9}, 3: {1e30, 7}}, Separation: map[int]float64{1: 2.5}}}},
		{Kind: jobExtract, Pairs: []Pair{{Positive: []int{1, 2}, Negative: []int{3}}}, Extract: &ExtractOptions{Method: MethodPCA, ResponseTokens: 4, Batch: 2},
			Observe: observed{Progress: true}},
		{Kind: jobResolve, Plan: &plan},
		{Kind: jobQuit},
	}
	for _, j := range jobs {
		data, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeJob(data)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, j) {
			t.Errorf("%s job after the broadcast:\n%+v\nwant\n%+v", j.Kind, got, j)
		}
	}
	for data, want := range map[string]string{
		`{"kind":"train"}`:              "unknown kind",
		`{"kind":"decode"}`:             "without its inputs",
		`{"kind":"extract","pairs":[]}`: "without its inputs",
		`not json`:                      "lockstep job",
	} {
		if _, err := decodeJob([]byte(data)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error saying %q", data, err, want)
		}
	}
}

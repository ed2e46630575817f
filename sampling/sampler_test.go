package sampling_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
	"github.com/mlx-genkit/genkit/sampling"
	"gonum.org/v1/gonum/stat/distuv"
)

// TestDrawsFollowTheProcessedDistribution draws 20,000 tokens per sampling
// config from the processed distribution of HF's first-step logits and runs
// a chi-square goodness-of-fit test (fixed seed: deterministic).
func TestDrawsFollowTheProcessedDistribution(t *testing.T) {
	ref := loadRef(t)
	n := 0
	for name, c := range ref.Configs {
		cfg := hfConfig(t, c.Config, ref.EOS)
		if !cfg.Sampling() {
			continue
		}
		n++
		run := c.Runs[0]
		scores := toF32(run.Steps[0].Logits)
		sampling.BuildChain(cfg, ref.EOS, len(run.Prompt)).Process(&sampling.Lane{IDs: run.Steps[0].InputIDs, PromptLen: len(run.Prompt)}, scores)
		probs := softmax(scores)
		const draws = 20000
		counts := make([]float64, len(probs))
		r := sampling.LaneRand(12345, 0)
		for i := 0; i < draws; i++ {
			id, err := sampling.Draw(scores, r.Float64())
			if err != nil {
				t.Fatal(err)
			}
			if probs[id] == 0 {
				t.Fatalf("%s: drew token %d which the chain removed", name, id)
			}
			counts[id]++
		}
		// Bins with expected count >= 5; the rest pooled.
		var stat, poolE, poolO float64
		df := -1
		for i, p := range probs {
			e := p * draws
			if e >= 5 {
				stat += (counts[i] - e) * (counts[i] - e) / e
				df++
			} else {
				poolE += e
				poolO += counts[i]
			}
		}
		if poolE > 0 {
			stat += (poolO - poolE) * (poolO - poolE) / math.Max(poolE, 1e-9)
			df++
		}
		if df < 1 {
			continue // a single possible token: nothing to test
		}
		p := distuv.ChiSquared{K: float64(df)}.Survival(stat)
		t.Logf("%s: chi2 %.1f, df %d, p %.3f", name, stat, df, p)
		if p <= 0.001 {
			t.Errorf("%s: draws do not follow the processed distribution (chi2 %.1f, df %d, p %.2g)", name, stat, df, p)
		}
	}
	if n < 8 {
		t.Fatalf("only %d sampling configs", n)
	}
}

func softmax(scores []float32) []float64 {
	m := math.Inf(-1)
	for _, s := range scores {
		m = math.Max(m, float64(s))
	}
	out := make([]float64, len(scores))
	var z float64
	for i, s := range scores {
		out[i] = math.Exp(float64(s) - m)
		z += out[i]
	}
	for i := range out {
		out[i] /= z
	}
	return out
}

func tinyModel(t testing.TB) *engine.Model {
	t.Helper()
	var m *engine.Model
	if err := mlx.Do(context.Background(), func() error {
		var err error
		m, err = engine.LoadModel("testdata/tiny_sampler", engine.LoadOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mlx.Do(context.Background(), func() error { m.Free(); return nil }) })
	return m
}

// seededRun samples 3 lanes of 16 tokens with seed 7.
func seededRun(t testing.TB, shared bool) [][]int {
	m := tinyModel(t)
	cfg := &sampling.GenerationConfig{DoSample: sampling.Ptr(true), TopK: sampling.Ptr(0), Temperature: sampling.Ptr(1.5), Seed: sampling.Ptr(uint64(7))}
	s, err := sampling.NewSampler(cfg, 3, sampling.SamplerOptions{SharedDraws: shared})
	if err != nil {
		t.Fatal(err)
	}
	return laneTokens(t, m, engine.Request{Prompt: []int{1, 20, 21}, Lanes: 3, MaxNewTokens: 16, IgnoreEOS: true, Chooser: s})
}

// laneTokens generates req and returns each lane's tokens.
func laneTokens(t testing.TB, m *engine.Model, req engine.Request) [][]int {
	t.Helper()
	res, _, err := m.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]int, len(res))
	for i, r := range res {
		out[i] = r.Tokens
	}
	return out
}

// TestHelperSeededRun prints a seeded run; TestSeedAcrossProcesses runs it
// in child processes.
func TestHelperSeededRun(t *testing.T) {
	if os.Getenv("GENKIT_SEEDED_CHILD") != "1" {
		t.Skip("helper for TestSeedAcrossProcesses")
	}
	b, _ := json.Marshal(seededRun(t, false))
	fmt.Printf("TOKENS %s\n", b)
}

func TestSeedAcrossProcesses(t *testing.T) {
	here := seededRun(t, false)
	want, _ := json.Marshal(here)
	for i := 0; i < 2; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSeededRun$", "-test.count=1")
		cmd.Env = append(os.Environ(), "GENKIT_SEEDED_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		got := ""
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "TOKENS ") {
				got = strings.TrimPrefix(line, "TOKENS ")
			}
		}
		if got != string(want) {
			t.Fatalf("process %d drew %s, this process %s", i, got, want)
		}
	}
	// Lanes have separate streams: with the same prompt they diverge.
	if fmt.Sprint(here[0]) == fmt.Sprint(here[1]) && fmt.Sprint(here[1]) == fmt.Sprint(here[2]) {
		t.Fatalf("all lanes drew the same tokens: %v", here)
	}
	// Shared draws: identical logits and identical uniforms give identical lanes.
	sh := seededRun(t, true)
	if fmt.Sprint(sh[0]) != fmt.Sprint(sh[1]) || fmt.Sprint(sh[1]) != fmt.Sprint(sh[2]) {
		t.Fatalf("shared draws, same logits, different tokens: %v", sh)
	}
}

func TestNaNLogitsGiveAClearError(t *testing.T) {
	cfg := &sampling.GenerationConfig{}
	s, err := sampling.NewSampler(cfg, 1, sampling.SamplerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = mlx.Do(context.Background(), func() error {
		x, err := mlx.FromFloat32s([]float32{0, float32(math.NaN()), 1}, 1, 3)
		if err != nil {
			return err
		}
		defer x.Free()
		_, err = s.Choose(x, 0, [][]int{{1}})
		return err
	})

	if err == nil || !strings.Contains(err.Error(), "NaN") {
		t.Fatalf("NaN logits: %v", err)
	}
}

type fakeDecoder map[int]string

func (f fakeDecoder) Decode(ids []int, _ bool) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(f[id])
	}
	return b.String()
}

func TestStopStringsAcrossTokens(t *testing.T) {
	dec := fakeDecoder{1: "Hel", 2: "lo wo", 3: "rld", 4: "!", 5: "ld!!"}
	stop := sampling.StopStrings(dec, []string{"world", "\n\n"})
	for _, tc := range []struct {
		ids  []int
		want bool
	}{
		{[]int{1, 2}, false},
		{[]int{1, 2, 3}, true},     // spans three tokens
		{[]int{1, 2, 5}, false},    // "Hello wold!!" holds no stop string
		{[]int{1, 2, 3, 4}, false}, // the string ended before the last token
	} {
		if got := stop(0, tc.ids); got != tc.want {
			t.Errorf("%v (%q): stop %v, want %v", tc.ids, dec.Decode(tc.ids, false), got, tc.want)
		}
	}
	overrun := sampling.StopStrings(fakeDecoder{1: "say: wor", 2: "ld peace"}, []string{"world"})
	if !overrun(0, []int{1, 2}) {
		t.Error("a last token that runs past the stop string did not stop")
	}
}

package smoke

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
)

func loadDefault(t *testing.T) *engine.Model {
	t.Helper()
	path, err := engine.DefaultModelPath()
	if err != nil {
		t.Fatal(err)
	}
	var m *engine.Model
	if err := mlx.Do(context.Background(), func() error { var err error; m, err = engine.LoadModel(path, engine.LoadOptions{}); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mlx.Do(context.Background(), func() error { m.Free(); return nil }) })
	return m
}

// TestJudge: each criterion fails on its own bad value and the verdict
// follows; a report with every value good passes.
func TestJudge(t *testing.T) {
	one := 1.0
	kl := 1e-9
	good := Report{SuspectRateBase: 0, SuspectRateSteered: 0.02, Determinism: &one, Divergence: 1, PersonaGain: 0.5, PPLRatio: 1.5, KLvsHF: &kl,
		BaseLanguageKept: 1}
	r := good
	r.judge(2)
	if !r.Pass || len(r.Criteria) != 8 {
		t.Fatalf("good report: pass %v, %d criteria", r.Pass, len(r.Criteria))
	}
	zero, bigKL := 0.5, 0.1
	for name, bad := range map[string]func(*Report){
		"suspect rate (base)":           func(r *Report) { r.SuspectRateBase = 0.05 },
		"suspect rate (steered)":        func(r *Report) { r.SuspectRateSteered = 0.05 },
		"determinism":                   func(r *Report) { r.Determinism = &zero },
		"divergence":                    func(r *Report) { r.Divergence = 0.9 },
		"base in the source's language": func(r *Report) { r.BaseLanguageKept = 0.9 },
		"persona gain (projection)":     func(r *Report) { r.PersonaGain = 0 },
		"fluency (ppl steered/base)":    func(r *Report) { r.PPLRatio = 2.5 },
		"kl_vs_hf":                      func(r *Report) { r.KLvsHF = &bigKL },
	} {
		r := good
		bad(&r)
		r.judge(2)
		if r.Pass {
			t.Errorf("%s: bad value passed", name)
		}
		for _, c := range r.Criteria {
			if c.Pass == (c.Name == name) {
				t.Errorf("%s: criterion %s pass=%v", name, c.Name, c.Pass)
			}
		}
	}
}

func TestPPLRatio(t *testing.T) {
	for _, c := range []struct{ a, b, want float64 }{
		{4, 2, 2}, {2, 4, 0.5}, {0, 3, 100}, {3, 0, 100}, {1e9, 1, 100}, {math.Inf(1), 1, 100}, {math.NaN(), 1, 100},
	} {
		if got := PPLRatio(c.a, c.b); got != c.want {
			t.Errorf("PPLRatio(%g, %g) = %g, want %g", c.a, c.b, got, c.want)
		}
	}
}

func TestCandidateLayers(t *testing.T) {
	got := candidateLayers(15, map[int]float64{3: 0.2, 20: 0.9, 15: 0.5}, 30)
	if len(got) != 3 || got[0] != 13 || got[1] != 17 || got[2] != 20 {
		t.Errorf("candidates %v, want [13 17 20]", got)
	}
	got = candidateLayers(1, map[int]float64{1: 0.9}, 3)
	if len(got) != 0 {
		t.Errorf("edge of a 3-block model, best is the preset's: %v, want none", got)
	}
}

// TestPromptAsksForARewrite: the smoke prompt is a user turn that asks for a
// rewrite and carries the source line itself.
func TestPromptAsksForARewrite(t *testing.T) {
	if !strings.Contains(strings.ToLower(Instruction), "rewrite") || !strings.Contains(Instruction, "news line") {
		t.Fatalf("instruction %q does not ask for a rewrite of the news line", Instruction)
	}
	m := loadDefault(t)
	line := "Texaco Canada said it lowered the contract price it will pay for crude oil 64 Canadian cts a barrel, effective today."
	ids, err := Prompt(m, line)
	if err != nil {
		t.Fatal(err)
	}
	text := m.Tokenizer.Decode(ids, false)
	if !strings.Contains(text, Instruction+"\n"+line) || !strings.Contains(text, "user") || !strings.HasSuffix(strings.TrimSpace(text), "assistant") {
		t.Errorf("prompt %q: want a user turn with the instruction and the line, then the assistant's turn", text)
	}
}

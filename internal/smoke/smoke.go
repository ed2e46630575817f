package smoke

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/steering"
)

// Options configure a smoke run.
type Options struct {
	Preset    string
	Lines     int
	MaxNew    int
	Seed      uint64
	HFRef     string // stored HF next-token distributions (smollm2_dequant_fp32.json)
	Progress  func(done, total int)
	Guardrail steering.GuardOptions
}

// Report is the smoke result; the JSON field names are a stable contract.
type Report struct {
	Lines              int             `json:"lines"`
	SuspectRateBase    float64         `json:"suspect_rate_base"`
	SuspectRateSteered float64         `json:"suspect_rate_steered"`
	Determinism        float64         `json:"determinism"`
	Divergence         float64         `json:"divergence"`
	KLvsHF             *float64        `json:"kl_vs_hf"`
	Preset             string          `json:"preset"`
	Layer              int             `json:"layer"`
	Alpha              float64         `json:"alpha"`
	Guardrails         steering.Counts `json:"guardrails"`
	Examples           []Example       `json:"examples,omitempty"`
}

// Example is one rewritten line.
type Example struct {
	Source, Base, Steered string
}

// Run rewrites news lines base and steered and measures the criteria: suspect
// rates (digit, LaTeX or garbage runs the source line did not have),
// determinism (the base of each line identical across two runs with one
// seed), divergence (steered differs from base) and the mean KL from stored
// HF next-token distributions.
func Run(ctx context.Context, m *engine.Model, opts Options) (*Report, error) {
	lines, err := NewsLines(opts.Lines)
	if err != nil {
		return nil, err
	}
	p, err := steering.PresetByName(opts.Preset)
	if err != nil {
		return nil, err
	}
	ex, err := steering.PresetVectors(ctx, m, p, steering.MethodMean, nil)
	if err != nil {
		return nil, err
	}
	layer := p.Layer(m.NumLayers())
	var inj *steering.Injection
	if err := mlx.Do(func() error {
		var err error
		inj, err = steering.NewInjection(m, map[int][]float32{layer: ex.Vectors[layer]}, steering.InjectionOptions{Alpha: p.Alpha})
		return err
	}); err != nil {
		return nil, err
	}
	defer mlx.Do(func() error { inj.Free(); return nil })
	cfg := &sampling.GenerationConfig{DoSample: sampling.Ptr(true), Temperature: sampling.Ptr(0.7), TopP: sampling.Ptr(0.9),
		MaxNewTokens: sampling.Ptr(opts.MaxNew), Seed: sampling.Ptr(opts.Seed), EOSTokenID: m.Tokenizer.EOS, RepetitionPenalty: sampling.Ptr(1.1)}
	rep := &Report{Lines: len(lines), Preset: p.Name, Layer: layer, Alpha: p.Alpha}
	var susB, susS, same, diverge int
	for i, line := range lines {
		text, err := m.ApplyChatTemplate([]engine.Message{{Role: "user", Content: "Rewrite this news line in your own words, in one sentence:\n" + line}}, true)
		if err != nil {
			return nil, err
		}
		ids, err := m.Tokenizer.Encode(text, false)
		if err != nil {
			return nil, err
		}
		// Two unguarded runs with one seed measure determinism; the
		// guardrails, when on, act on a third.
		c1, err := steering.Compare(ctx, m, ids, cfg, steering.Steer{Injection: inj}, steering.GuardOptions{}, m.Tokenizer)
		if err != nil {
			return nil, err
		}
		c2, err := steering.Compare(ctx, m, ids, cfg, steering.Steer{Injection: inj}, steering.GuardOptions{}, m.Tokenizer)
		if err != nil {
			return nil, err
		}
		if fmt.Sprint(c2.Base) == fmt.Sprint(c1.Base) {
			same++
		}
		if opts.Guardrail.AvoidIdentical || opts.Guardrail.ResampleSuspect {
			if c1, err = steering.Compare(ctx, m, ids, cfg, steering.Steer{Injection: inj}, opts.Guardrail, m.Tokenizer); err != nil {
				return nil, err
			}
		}
		rep.Guardrails.Add(c1.Counts)
		base, steered := m.Tokenizer.Decode(c1.Base, true), m.Tokenizer.Decode(c1.Steered, true)
		if steering.Suspect(line, base) {
			susB++
		}
		if steering.Suspect(line, steered) {
			susS++
		}
		if fmt.Sprint(c1.Base) != fmt.Sprint(c1.Steered) {
			diverge++
		}
		if i < 3 {
			rep.Examples = append(rep.Examples, Example{Source: line, Base: base, Steered: steered})
		}
		if opts.Progress != nil {
			opts.Progress(i+1, len(lines))
		}
	}
	n := float64(len(lines))
	rep.SuspectRateBase, rep.SuspectRateSteered = float64(susB)/n, float64(susS)/n
	rep.Determinism, rep.Divergence = float64(same)/n, float64(diverge)/n
	if opts.HFRef != "" {
		if kl, err := KLvsHF(m, opts.HFRef); err == nil {
			rep.KLvsHF = &kl
		} else if !os.IsNotExist(err) {
			return nil, err
		}
	}
	return rep, nil
}

// KLvsHF is the mean KL(HF || genkit) of next-token distributions over the
// prompts stored in ref (top-k log-probs from transformers).
func KLvsHF(m *engine.Model, ref string) (float64, error) {
	data, err := os.ReadFile(ref)
	if err != nil {
		return 0, err
	}
	var r struct {
		Prompts []struct {
			Tokens      []int     `json:"tokens"`
			TopIDs      []int     `json:"top_ids"`
			TopLogProbs []float64 `json:"top_logprobs"`
		} `json:"prompts"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return 0, fmt.Errorf("%s: %w", ref, err)
	}
	var sum float64
	for _, p := range r.Prompts {
		lanes, err := m.Logits(p.Tokens, 1, false, nil)
		if err != nil {
			return 0, err
		}
		sum += sampling.KLFromTop(p.TopIDs, p.TopLogProbs, lanes[0][0])
	}
	return sum / float64(len(r.Prompts)), nil
}

package steering

import (
	"context"
	"fmt"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/quality"
	"github.com/mlx-genkit/genkit/sampling"
)

// Steer is how the steered lane is steered: an Injection (residual) or a
// LogitBias; exactly one is set.
type Steer struct {
	Injection *Injection
	Bias      *LogitBias
}

// GuardOptions are the guardrails of bulk base-versus-steered runs.
type GuardOptions struct {
	// AvoidIdentical resamples the steered lane once (with another seed)
	// when it equals the base.
	AvoidIdentical bool
	// ResampleSuspect resamples a lane once when its text is suspect (see
	// quality.Suspect).
	ResampleSuspect bool
}

// Counts says how often each guardrail acted.
type Counts struct {
	// SeedSeparated counts runs whose lanes drew from separate streams.
	SeedSeparated      int `json:"seed_separated"`
	IdenticalResampled int `json:"identical_resampled"`
	SuspectResampled   int `json:"suspect_resampled"`
}

// Add accumulates other into c.
func (c *Counts) Add(o Counts) {
	c.SeedSeparated += o.SeedSeparated
	c.IdenticalResampled += o.IdenticalResampled
	c.SuspectResampled += o.SuspectResampled
}

// Comparison is one prompt decoded base and steered.
type Comparison struct {
	Base, Steered []int
	Counts        Counts
}

// Compare decodes prompt in two batched lanes, base (lane 0) and steered
// (lane 1), each with its own random stream derived from cfg's seed, and
// applies the guardrails. dec turns ids into text for the suspect check.
func Compare(ctx context.Context, m *engine.Model, prompt []int, cfg *sampling.GenerationConfig, st Steer, guard GuardOptions, dec sampling.Decoder) (*Comparison, error) {
	seed := uint64(0)
	if cfg.Seed != nil {
		seed = *cfg.Seed
	}
	run := func(seed uint64) ([]engine.LaneResult, error) {
		c := *cfg
		c.Seed = &seed
		opts := sampling.SamplerOptions{EOS: cfg.EOSTokenID}
		if st.Bias != nil {
			opts.LaneExtra = func(lane int) []sampling.Processor {
				if lane == 0 {
					return nil
				}
				return []sampling.Processor{st.Bias}
			}
		}
		s, err := sampling.NewSampler(&c, 2, opts)
		if err != nil {
			return nil, err
		}
		req := engine.Request{Prompt: prompt, Lanes: 2, MaxNewTokens: c.MaxNew(len(prompt)), Chooser: s, EOS: cfg.EOSTokenID}
		if st.Injection != nil {
			req.Hook = st.Injection
		}
		res, _, err := m.Generate(ctx, req)
		return res, err
	}
	res, err := run(seed)
	if err != nil {
		return nil, err
	}
	out := &Comparison{Base: res[0].Tokens, Steered: res[1].Tokens}
	if cfg.Sampling() {
		out.Counts.SeedSeparated = 1
	}
	text := func(ids []int) string {
		if dec == nil {
			return ""
		}
		return dec.Decode(ids, true)
	}
	promptText := text(prompt)
	resampled := false
	if guard.AvoidIdentical && fmt.Sprint(out.Base) == fmt.Sprint(out.Steered) {
		again, err := run(seed + 0x5eed)
		if err != nil {
			return nil, err
		}
		out.Steered = again[1].Tokens
		out.Counts.IdenticalResampled++
		resampled = true
	}
	if guard.ResampleSuspect && dec != nil {
		check := quality.Check{Source: promptText}
		badBase := len(quality.Suspect(text(out.Base), check)) > 0
		badSteered := !resampled && len(quality.Suspect(text(out.Steered), check)) > 0
		if badBase || badSteered {
			again, err := run(seed + 0xbad)
			if err != nil {
				return nil, err
			}
			if badBase {
				out.Base = again[0].Tokens
				out.Counts.SuspectResampled++
			}
			if badSteered {
				out.Steered = again[1].Tokens
				out.Counts.SuspectResampled++
			}
		}
	}
	return out, nil
}

// NewSteer builds the steered lane's steering for a mode: "residual" adds
// alpha * v (normalised) after block layer; "logit-bias" adds alpha * W_U v
// to the lane's scores. Runs on the MLX thread; Free releases it.
func NewSteer(m *engine.Model, mode string, layer int, v []float32, alpha float64) (Steer, error) {
	switch mode {
	case "residual":
		inj, err := NewInjection(m, map[int][]float32{layer: v}, InjectionOptions{Alpha: alpha})
		return Steer{Injection: inj}, err
	case "logit-bias":
		dir, err := UnembedVector(m, v, false)
		if err != nil {
			return Steer{}, err
		}
		return Steer{Bias: &LogitBias{Direction: dir, Alpha: alpha}}, nil
	}
	return Steer{}, fmt.Errorf("steering mode %q: want residual or logit-bias", mode)
}

// Free releases the steering's arrays (on the MLX thread).
func (st Steer) Free() {
	if st.Injection != nil {
		st.Injection.Free()
	}
}

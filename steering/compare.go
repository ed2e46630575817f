package steering

import (
	"context"
	"fmt"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
	"github.com/mlx-genkit/genkit/quality"
	"github.com/mlx-genkit/genkit/sampling"
)

// Steer is how the steered lane is steered: an Injection (residual) or a
// LogitBias; exactly one is set.
type Steer struct {
	Injection *Injection
	Bias      *LogitBias
	// laneScales multiply the bias's alpha per lane (nil: lane 0 is the
	// base, every other lane is steered with alpha).
	laneScales []float64
}

// laneExtra gives each steered lane the logit bias, its alpha scaled by the
// lane's multiplier (sampling.SamplerOptions.LaneExtra).
func (st Steer) laneExtra(lane int) []sampling.Processor {
	if st.Bias == nil {
		return nil
	}
	scale := 1.0
	if st.laneScales != nil {
		if lane >= len(st.laneScales) {
			return nil
		}
		scale = st.laneScales[lane]
	} else if lane == 0 {
		scale = 0
	}
	if scale == 0 {
		return nil
	}
	if scale == 1 {
		return []sampling.Processor{st.Bias}
	}
	b := *st.Bias
	b.Alpha *= scale
	return []sampling.Processor{&b}
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
	run := func(seed uint64) ([]Lane, error) {
		c := *cfg
		c.Seed = &seed
		lanes, _, _, err := decodeLanes(ctx, m, prompt, &c, st, 2, laneOptions{}, Observers{})
		return lanes, err
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

// Fixed is steering with a given vector: "residual" adds alpha * v after
// block layer (negative counts from the end); "logit-bias" adds alpha * W_U v
// to the steered lanes' scores. Decode it through Run.Steering, or Build it.
func Fixed(m *engine.Model, mode string, layer int, v []float32, alpha float64) (*Resolved, error) {
	md, err := ParseMode(mode)
	if err != nil {
		return nil, err
	}
	l, err := ResolveLayer(m, layer)
	if err != nil {
		return nil, err
	}
	if err := CheckVector(v, m.HiddenSize()); err != nil {
		return nil, err
	}
	if !finite(alpha) {
		return nil, fmt.Errorf("steering alpha %v is not a finite number", alpha)
	}
	return &Resolved{Plan: Plan{Mode: md}, Mode: md, Layers: []int{l}, Layer: l, Alpha: alpha, Vectors: map[int][]float32{l: v}}, nil
}

// NewSteer builds Fixed steering for the steered lane (lane 0 is the base).
// It enters the MLX thread itself; Free releases it.
func NewSteer(m *engine.Model, mode string, layer int, v []float32, alpha float64) (Steer, error) {
	r, err := Fixed(m, mode, layer, v, alpha)
	if err != nil {
		return Steer{}, err
	}
	return r.Build(m, nil)
}

// Close releases the steering's arrays, entering the MLX thread itself.
func (st Steer) Close() { _ = mlx.Do(context.Background(), func() error { st.Free(); return nil }) }

// Free releases the steering's arrays (on the MLX thread).
func (st Steer) Free() {
	if st.Injection != nil {
		st.Injection.Free()
	}
}

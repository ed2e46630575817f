package smoke

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/steering"
)

// CalibrationLinesOffset is where calibration's held-in lines start: after
// the lines `genkit smoke` judges by default, so a setting is never judged
// on the lines it was chosen on.
const CalibrationLinesOffset = 20

// DefaultAlphas are the strengths a calibration sweeps, per mode (logit
// bias adds alpha * W_U v straight to the logits, so it needs far less).
var DefaultAlphas = map[string][]float64{
	"residual":   {0.25, 0.5, 1, 2, 3, 4},
	"logit-bias": {0.05, 0.1, 0.2, 0.35, 0.5, 0.75},
}

// CalibrateOptions configure Calibrate.
type CalibrateOptions struct {
	Preset      string
	Mode        string
	Lines       int
	Alphas      []float64
	Bound       float64
	MaxNew      int
	Seed        uint64
	Temperature float64
	// Trial reports each measured setting as it finishes.
	Trial func(Trial)
}

// Trial is one measured setting of a calibration sweep.
type Trial struct {
	Alpha          float64 `json:"alpha"`
	Layer          int     `json:"layer"`
	SuspectSteered float64 `json:"suspect_rate_steered"`
	SuspectBase    float64 `json:"suspect_rate_base"`
	PersonaGain    float64 `json:"persona_gain"`
	MarkersSteered float64 `json:"markers_steered"`
	PPLRatio       float64 `json:"ppl_ratio"`
	ContentKept    float64 `json:"content_kept_steered"`
	OK             bool    `json:"ok"`
	Why            string  `json:"why,omitempty"`
}

// Calibrate sweeps the preset's strength in one mode on held-in news lines
// and picks the strongest setting whose steered lines have no more faults
// than the base lane's on the same lines (none, when the base has none),
// stay within the fluency bound and gain persona; in residual mode it then tries
// the blocks around the preset's and the best-separated one at that
// strength and keeps the one with the largest persona gain.
func Calibrate(ctx context.Context, m *engine.Model, opts CalibrateOptions) (steering.Calibration, []Trial, error) {
	if opts.Mode == "" {
		opts.Mode = "residual"
	}
	if opts.Bound == 0 {
		opts.Bound = DefaultBound
	}
	if opts.Lines == 0 {
		opts.Lines = 10
	}
	if opts.MaxNew == 0 {
		opts.MaxNew = 64
	}
	if len(opts.Alphas) == 0 {
		opts.Alphas = DefaultAlphas[opts.Mode]
	}
	alphas := append([]float64(nil), opts.Alphas...)
	sort.Float64s(alphas)
	p, err := steering.PresetByName(opts.Preset)
	if err != nil {
		return steering.Calibration{}, nil, err
	}
	fp, err := steering.Fingerprint(m)
	if err != nil {
		return steering.Calibration{}, nil, err
	}
	var trials []Trial
	try := func(alpha float64, layer int) (Trial, error) {
		a, l := alpha, layer
		rep, err := Run(ctx, m, Options{Preset: opts.Preset, Mode: opts.Mode, Alpha: &a, Layer: &l, Lines: opts.Lines,
			Offset: CalibrationLinesOffset, MaxNew: opts.MaxNew, Seed: opts.Seed, Temperature: opts.Temperature, Bound: opts.Bound, SkipDeterminism: true})
		if err != nil {
			return Trial{}, err
		}
		t := Trial{Alpha: alpha, Layer: layer, SuspectSteered: rep.SuspectRateSteered, SuspectBase: rep.SuspectRateBase,
			PersonaGain: rep.PersonaGain, MarkersSteered: rep.MarkersSteered, PPLRatio: rep.PPLRatio, ContentKept: rep.ContentKeptSteered}
		switch {
		case rep.SuspectRateSteered > rep.SuspectRateBase:
			t.Why = fmt.Sprintf("steering adds faults: %.0f%% of steered lines %v, %.0f%% of base lines", 100*rep.SuspectRateSteered,
				rep.ReasonsSteered, 100*rep.SuspectRateBase)
		case rep.PPLRatio > opts.Bound:
			t.Why = fmt.Sprintf("perplexity x%.2f over the bound %g", rep.PPLRatio, opts.Bound)
		case rep.PersonaGain <= 0:
			t.Why = fmt.Sprintf("no persona gain (%.3g)", rep.PersonaGain)
		default:
			t.OK = true
		}
		trials = append(trials, t)
		if opts.Trial != nil {
			opts.Trial(t)
		}
		return t, nil
	}
	layer := p.Layer(m.NumLayers())
	var best *Trial
	failsAfter := 0
	for _, a := range alphas {
		t, err := try(a, layer)
		if err != nil {
			return steering.Calibration{}, trials, err
		}
		if t.OK {
			best, failsAfter = &t, 0
		} else if best != nil {
			// Stronger settings that break the text twice in a row: stop.
			if failsAfter++; failsAfter >= 2 {
				break
			}
		}
	}
	if best != nil && opts.Mode == "residual" {
		ex, err := steering.PresetVectors(ctx, m, p, steering.MethodMean, nil)
		if err != nil {
			return steering.Calibration{}, trials, err
		}
		for _, l := range candidateLayers(layer, ex.Separation, m.NumLayers()) {
			t, err := try(best.Alpha, l)
			if err != nil {
				return steering.Calibration{}, trials, err
			}
			if t.OK && t.PersonaGain > best.PersonaGain {
				b := t
				best = &b
			}
		}
	}
	c := steering.Calibration{Preset: p.Name, Mode: opts.Mode, Model: fp, Bound: opts.Bound, Lines: opts.Lines, Date: time.Now().UTC()}
	if best == nil {
		c.Alpha, c.Layer = p.Alpha, layer
		c.Why = "no setting kept the text sound and gained persona: " + trials[0].Why
		if len(trials) > 1 {
			c.Why += fmt.Sprintf(" at alpha %g; %s at alpha %g", trials[0].Alpha, trials[len(trials)-1].Why, trials[len(trials)-1].Alpha)
		}
		return c, trials, nil
	}
	c.Found, c.Alpha, c.Layer = true, best.Alpha, best.Layer
	c.Measured = map[string]float64{"persona_gain": best.PersonaGain, "ppl_ratio": best.PPLRatio,
		"markers_steered": best.MarkersSteered, "content_kept_steered": best.ContentKept, "suspect_rate_steered": best.SuspectSteered}
	return c, trials, nil
}

// candidateLayers are the blocks next to the preset's and the block with
// the best separation (when it is another one), at most three, inside the
// model.
func candidateLayers(layer int, sep map[int]float64, n int) []int {
	bestSep, bestLayer := -1.0, -1
	for l, s := range sep {
		if s > bestSep || (s == bestSep && l < bestLayer) {
			bestSep, bestLayer = s, l
		}
	}
	var out []int
	seen := map[int]bool{layer: true}
	for _, l := range []int{layer - 2, layer + 2, bestLayer} {
		if l >= 0 && l < n && !seen[l] && len(out) < 3 {
			seen[l] = true
			out = append(out, l)
		}
	}
	return out
}

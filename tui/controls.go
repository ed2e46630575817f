package tui

import (
	"math"
	"strconv"

	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/steering"
)

// control is one live setting: it shows its value and steps it; active
// says whether it has an effect under the other settings (the sidebar greys
// it out otherwise, and why says why).
type control struct {
	name   string
	value  func(s *Settings) string
	step   func(s *Settings, dir int) // dir is +1 or -1
	active func(s *Settings) bool     // nil: always
	why    string                     // why it has no effect when not active
}

// isActive reports whether the control has an effect under s.
func (c *control) isActive(s *Settings) bool { return c.active == nil || c.active(s) }

// Why a control has no effect.
const (
	whyGreedy    = "do_sample is off (greedy decoding)"
	whyLogitBias = "mode is logit-bias"
	whyRamp      = "the ramp schedule sets the strength"
	whyVector    = "a vector file is steering (method applies to presets)"
)

func residual(s *Settings) bool { return s.Steering.Mode != steering.ModeLogitBias }

func fnum(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

func stepFloat(p **float64, def, delta, lo, hi float64, dir int) {
	v := def
	if *p != nil {
		v = **p
	}
	v = math.Round((v+float64(dir)*delta)*1e6) / 1e6
	v = math.Max(lo, math.Min(hi, v))
	*p = sampling.Ptr(v)
}

func stepInt(p **int, def, delta, lo, hi, dir int) {
	v := def
	if *p != nil {
		v = **p
	}
	v = max(lo, min(hi, v+dir*delta))
	*p = sampling.Ptr(v)
}

func getF(p *float64, def float64) float64 {
	if p == nil {
		return def
	}
	return *p
}

func getI(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

func cycle(options []string, cur string, dir int) string {
	i := 0
	for j, o := range options {
		if o == cur {
			i = j
		}
	}
	return options[(i+dir+len(options))%len(options)]
}

var schedules = []string{"constant", "warmup:8", "warmup:16", "ramp:0:2:16", "window:0:16", "window:8:0"}

// newControls lists the live controls; layers is the model's depth,
// presets the preset names and modelSamples the model's own do_sample (its
// generation_config.json), which holds while the session sets none.
func newControls(layers int, presets []string, modelSamples bool) []control {
	// sampled is do_sample as the run will see it: when it is off, the
	// sampling-only controls have no effect.
	sampled := func(s *Settings) bool {
		if s.Gen.DoSample != nil {
			return *s.Gen.DoSample
		}
		return modelSamples
	}
	return []control{
		{"alpha", func(s *Settings) string {
			v := fnum(s.Steering.EffectiveAlpha())
			if s.Steering.Alpha == nil {
				v += " auto"
			}
			return v
		}, func(s *Settings, d int) {
			// Clamped before and after the step, so any value (NaN, 1e300
			// from a session) steps back into steering.CheckAlpha's range.
			a := steering.ClampAlpha(math.Round((steering.ClampAlpha(s.Steering.EffectiveAlpha())+0.1*float64(d))*100) / 100)
			s.Steering.Alpha = &a
		}, func(s *Settings) bool { return s.Steering.AlphaMatters() }, whyRamp},
		{"layer", func(s *Settings) string {
			if s.Steering.Layer == nil {
				if l, ok := s.Steering.AutoLayer(layers); ok {
					return "auto (" + strconv.Itoa(l) + ")"
				}
				return "auto"
			}
			return strconv.Itoa(*s.Steering.Layer)
		}, func(s *Settings, d int) {
			l := layers / 2
			if s.Steering.Layer != nil {
				l = *s.Steering.Layer
			} else if al, ok := s.Steering.AutoLayer(layers); ok {
				l = al
			}
			l = max(0, min(layers-1, l+d))
			s.Steering.Layer = &l
		}, nil, ""},
		{"preset", func(s *Settings) string {
			if s.Steering.Preset == "" {
				return "(vector file)"
			}
			return s.Steering.Preset
		}, func(s *Settings, d int) {
			if len(presets) > 0 {
				s.Steering.Preset, s.Steering.Vector = cycle(presets, s.Steering.Preset, d), ""
			}
		}, nil, ""},
		{"mode", func(s *Settings) string { return string(s.Steering.Mode) },
			func(s *Settings, d int) {
				s.Steering.Mode = steering.Mode(cycle([]string{string(steering.ModeResidual), string(steering.ModeLogitBias)}, string(s.Steering.Mode), d))
			}, nil, ""},
		{"scope", func(s *Settings) string { return string(s.Steering.Scope) },
			func(s *Settings, d int) {
				s.Steering.Scope = steering.Scope(cycle([]string{string(steering.ScopeAll), string(steering.ScopePrompt), string(steering.ScopeGenerated)}, string(s.Steering.Scope), d))
			}, residual, whyLogitBias},
		{"schedule", func(s *Settings) string { return s.Steering.Schedule.String() },
			func(s *Settings, d int) {
				sc, err := steering.ParseSchedule(cycle(schedules, s.Steering.Schedule.String(), d))
				if err == nil {
					s.Steering.Schedule = sc
				}
			}, nil, ""},
		{"method", func(s *Settings) string { return string(s.Steering.Method) },
			func(s *Settings, d int) {
				s.Steering.Method = steering.Method(cycle([]string{string(steering.MethodMean), string(steering.MethodPCA)}, string(s.Steering.Method), d))
			}, func(s *Settings) bool { return s.Steering.Preset != "" }, whyVector},
		{"do_sample", func(s *Settings) string { return strconv.FormatBool(sampled(s)) },
			func(s *Settings, d int) { s.Gen.DoSample = sampling.Ptr(!sampled(s)) }, nil, ""},
		{"temperature", func(s *Settings) string { return fnum(s.Gen.Temp()) },
			func(s *Settings, d int) { stepFloat(&s.Gen.Temperature, 1, 0.05, 0.05, 5, d) }, sampled, whyGreedy},
		{"top_k", func(s *Settings) string { return strconv.Itoa(s.Gen.K()) },
			func(s *Settings, d int) { stepInt(&s.Gen.TopK, 50, 5, 0, 1000, d) }, sampled, whyGreedy},
		{"top_p", func(s *Settings) string { return fnum(getF(s.Gen.TopP, 1)) },
			func(s *Settings, d int) { stepFloat(&s.Gen.TopP, 1, 0.05, 0.05, 1, d) }, sampled, whyGreedy},
		{"min_p", func(s *Settings) string { return fnum(getF(s.Gen.MinP, 0)) },
			func(s *Settings, d int) { stepFloat(&s.Gen.MinP, 0, 0.01, 0, 1, d) }, sampled, whyGreedy},
		{"repetition_penalty", func(s *Settings) string { return fnum(getF(s.Gen.RepetitionPenalty, 1)) },
			func(s *Settings, d int) { stepFloat(&s.Gen.RepetitionPenalty, 1, 0.05, 0.5, 3, d) }, nil, ""},
		{"no_repeat_ngram", func(s *Settings) string { return strconv.Itoa(getI(s.Gen.NoRepeatNgramSize, 0)) },
			func(s *Settings, d int) { stepInt(&s.Gen.NoRepeatNgramSize, 0, 1, 0, 10, d) }, nil, ""},
		{"frequency_penalty", func(s *Settings) string { return fnum(getF(s.Gen.FrequencyPenalty, 0)) },
			func(s *Settings, d int) { stepFloat(&s.Gen.FrequencyPenalty, 0, 0.1, -2, 2, d) }, nil, ""},
		{"presence_penalty", func(s *Settings) string { return fnum(getF(s.Gen.PresencePenalty, 0)) },
			func(s *Settings, d int) { stepFloat(&s.Gen.PresencePenalty, 0, 0.1, -2, 2, d) }, nil, ""},
		{"seed", func(s *Settings) string {
			if s.Gen.Seed == nil {
				return "clock"
			}
			return strconv.FormatUint(*s.Gen.Seed, 10)
		}, func(s *Settings, d int) {
			v := uint64(0)
			if s.Gen.Seed != nil {
				v = *s.Gen.Seed
			}
			if d < 0 && v == 0 {
				return
			}
			s.Gen.Seed = sampling.Ptr(uint64(int64(v) + int64(d)))
		}, sampled, whyGreedy},
		{"shared_draws", func(s *Settings) string { return strconv.FormatBool(s.SharedDraws) },
			func(s *Settings, d int) { s.SharedDraws = !s.SharedDraws }, sampled, whyGreedy},
		{"max_new_tokens", func(s *Settings) string { return strconv.Itoa(getI(s.Gen.MaxNewTokens, steering.DefaultMaxNewTokens)) },
			func(s *Settings, d int) { stepInt(&s.Gen.MaxNewTokens, steering.DefaultMaxNewTokens, 16, 16, 1024, d) }, nil, ""},
		{"normalize", func(s *Settings) string { return strconv.FormatBool(s.Steering.Normalize) },
			func(s *Settings, d int) { s.Steering.Normalize = !s.Steering.Normalize }, residual, whyLogitBias},
	}
}

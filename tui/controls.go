package tui

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/mlx-genkit/genkit/engine"
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

// Typed values and resets. A control may take a typed value (set) and be
// reset to its default (reset). The limits are those of the values' homes:
// steering.CheckAlpha and steering.ResolveLayer, sampling's
// GenerationConfig.Validate and steering.ParseSchedule. The defaults are
// DefaultSettings' (steering.DefaultPlan for the plan; for a generation
// field, unset: the model's generation_config.json, else Hugging Face's
// default, as steering.Generation layers them).

// setter sets a control from typed text, or says why it cannot (the
// error names the control and its valid range); m is the loaded model.
type setter func(s *Settings, text string, m *engine.Model) error

// typedControls are the controls that take a typed value.
var typedControls = map[string]setter{
	"alpha": func(s *Settings, text string, _ *engine.Model) error {
		if isAuto(text) {
			s.Steering.Alpha = nil
			return nil
		}
		a, err := parseNumber(text)
		if err == nil {
			err = steering.CheckAlpha(a)
		}
		if err != nil {
			return fmt.Errorf("alpha %q: %w (or auto)", text, err)
		}
		s.Steering.Alpha = &a
		return nil
	},
	"layer": func(s *Settings, text string, m *engine.Model) error {
		if isAuto(text) {
			s.Steering.Layer = nil
			return nil
		}
		l, err := strconv.Atoi(strings.TrimSpace(text))
		if err == nil {
			_, err = steering.ResolveLayer(m, l)
		} else {
			err = fmt.Errorf("want a whole number: a block of the model's %d, 0..%d or -1..-%d", m.NumLayers(), m.NumLayers()-1, m.NumLayers())
		}
		if err != nil {
			return fmt.Errorf("layer %q: %w (or auto)", text, err)
		}
		s.Steering.Layer = &l
		return nil
	},
	"schedule": func(s *Settings, text string, _ *engine.Model) error {
		sc, err := steering.ParseSchedule(strings.TrimSpace(text))
		if err == nil {
			p := s.Steering
			p.Schedule = sc
			err = p.Validate()
		}
		if err != nil {
			return fmt.Errorf("schedule %q: %w", text, err)
		}
		s.Steering.Schedule = sc
		return nil
	},
	"temperature":        genFloat("temperature", func(g *sampling.GenerationConfig) **float64 { return &g.Temperature }),
	"top_p":              genFloat("top_p", func(g *sampling.GenerationConfig) **float64 { return &g.TopP }),
	"min_p":              genFloat("min_p", func(g *sampling.GenerationConfig) **float64 { return &g.MinP }),
	"repetition_penalty": genFloat("repetition_penalty", func(g *sampling.GenerationConfig) **float64 { return &g.RepetitionPenalty }),
	"frequency_penalty":  genFloat("frequency_penalty", func(g *sampling.GenerationConfig) **float64 { return &g.FrequencyPenalty }),
	"presence_penalty":   genFloat("presence_penalty", func(g *sampling.GenerationConfig) **float64 { return &g.PresencePenalty }),
	"top_k":              genInt("top_k", func(g *sampling.GenerationConfig) **int { return &g.TopK }),
	"no_repeat_ngram":    genInt("no_repeat_ngram", func(g *sampling.GenerationConfig) **int { return &g.NoRepeatNgramSize }),
	"max_new_tokens":     genInt("max_new_tokens", func(g *sampling.GenerationConfig) **int { return &g.MaxNewTokens }),
	"seed": func(s *Settings, text string, _ *engine.Model) error {
		if t := strings.TrimSpace(text); t == "clock" {
			s.Gen.Seed = nil
			return nil
		}
		v, err := strconv.ParseUint(strings.TrimSpace(text), 10, 64)
		if err != nil {
			return fmt.Errorf("seed %q: want a whole number in [0, %d] (or clock)", text, uint64(math.MaxUint64))
		}
		s.Gen.Seed = &v
		return nil
	},
}

func isAuto(text string) bool { return strings.EqualFold(strings.TrimSpace(text), "auto") }

// parseNumber reads a finite number.
func parseNumber(text string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
	switch {
	case err != nil:
		return 0, errors.New("not a number")
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, errors.New("not a finite number")
	}
	return v, nil
}

// checkGen validates the generation settings with one field changed
// (sampling's rules; do_sample on without beams, so temperature's rule
// applies too).
func checkGen(s *Settings, set func(g *sampling.GenerationConfig)) error {
	g := s.Gen
	set(&g)
	if g.Beams() <= 1 {
		g.DoSample = sampling.Ptr(true)
	}
	return g.Validate()
}

// genFloat is the setter of a float generation field.
func genFloat(name string, field func(g *sampling.GenerationConfig) **float64) setter {
	return func(s *Settings, text string, _ *engine.Model) error {
		v, err := parseNumber(text)
		if err == nil {
			err = checkGen(s, func(g *sampling.GenerationConfig) { *field(g) = &v })
		}
		if err != nil {
			return fmt.Errorf("%s %q: %w", name, text, err)
		}
		*field(&s.Gen) = &v
		return nil
	}
}

// genInt is the setter of an integer generation field.
func genInt(name string, field func(g *sampling.GenerationConfig) **int) setter {
	return func(s *Settings, text string, _ *engine.Model) error {
		v, err := strconv.Atoi(strings.TrimSpace(text))
		if err != nil {
			err = errors.New("want a whole number")
		} else {
			err = checkGen(s, func(g *sampling.GenerationConfig) { *field(g) = &v })
		}
		if err != nil {
			return fmt.Errorf("%s %q: %w", name, text, err)
		}
		*field(&s.Gen) = &v
		return nil
	}
}

// resetControl sets control name back to its value in def (DefaultSettings:
// the default plan's field, or a generation field as the new session has
// it, unset but for the seed); it reports false for an unknown name.
func resetControl(name string, s *Settings, def Settings) bool {
	p, d := &s.Steering, def.Steering
	g, dg := &s.Gen, def.Gen
	switch name {
	case "alpha":
		p.Alpha = d.Alpha
	case "layer":
		p.Layer = d.Layer
	case "preset":
		p.Preset, p.Vector = d.Preset, d.Vector
	case "mode":
		p.Mode = d.Mode
	case "scope":
		p.Scope = d.Scope
	case "schedule":
		p.Schedule = d.Schedule
	case "method":
		p.Method = d.Method
	case "normalize":
		p.Normalize = d.Normalize
	case "do_sample":
		g.DoSample = dg.DoSample
	case "temperature":
		g.Temperature = dg.Temperature
	case "top_k":
		g.TopK = dg.TopK
	case "top_p":
		g.TopP = dg.TopP
	case "min_p":
		g.MinP = dg.MinP
	case "repetition_penalty":
		g.RepetitionPenalty = dg.RepetitionPenalty
	case "no_repeat_ngram":
		g.NoRepeatNgramSize = dg.NoRepeatNgramSize
	case "frequency_penalty":
		g.FrequencyPenalty = dg.FrequencyPenalty
	case "presence_penalty":
		g.PresencePenalty = dg.PresencePenalty
	case "seed":
		g.Seed = dg.Seed
	case "shared_draws":
		s.SharedDraws = def.SharedDraws
	case "max_new_tokens":
		g.MaxNewTokens = dg.MaxNewTokens
	default:
		return false
	}
	return true
}

// resetAll sets every control back to its default (DefaultSettings); the
// prompt, the system prompt, the conversation and the chat switch stay.
func resetAll(s *Settings, def Settings) {
	def.Prompt, def.System, def.Chat = s.Prompt, s.System, s.Chat
	def.Messages, def.ChatKwargs, def.Sweep = s.Messages, s.ChatKwargs, s.Sweep
	*s = def
}

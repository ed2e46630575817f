package tui

import (
	"math"
	"strconv"

	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/steering"
)

// control is one live setting: it shows its value and steps it.
type control struct {
	name  string
	value func(s *Settings) string
	step  func(s *Settings, dir int) // dir is +1 or -1
}

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

// newControls lists the live controls; layers is the model's depth and
// presets the preset names.
func newControls(layers int, presets []string) []control {
	return []control{
		{"alpha", func(s *Settings) string { return fnum(s.Steering.Alpha) },
			func(s *Settings, d int) {
				a := math.Round((s.Steering.Alpha+0.1*float64(d))*100) / 100
				s.Steering.Alpha = a
			}},
		{"layer", func(s *Settings) string {
			if s.Steering.Layer < 0 {
				return "auto"
			}
			return strconv.Itoa(s.Steering.Layer)
		}, func(s *Settings, d int) {
			l := s.Steering.Layer
			if l < 0 {
				l = layers / 2
			}
			s.Steering.Layer = max(0, min(layers-1, l+d))
		}},
		{"preset", func(s *Settings) string {
			if s.Steering.Preset == "" {
				return "(vector file)"
			}
			return s.Steering.Preset
		}, func(s *Settings, d int) {
			if len(presets) > 0 {
				s.Steering.Preset = cycle(presets, s.Steering.Preset, d)
			}
		}},
		{"mode", func(s *Settings) string { return s.Steering.Mode },
			func(s *Settings, d int) {
				s.Steering.Mode = cycle([]string{"residual", "logit-bias"}, s.Steering.Mode, d)
			}},
		{"scope", func(s *Settings) string { return s.Steering.Scope },
			func(s *Settings, d int) {
				s.Steering.Scope = cycle([]string{string(steering.ScopeAll), string(steering.ScopePrompt), string(steering.ScopeGenerated)}, s.Steering.Scope, d)
			}},
		{"schedule", func(s *Settings) string { return s.Steering.Schedule },
			func(s *Settings, d int) { s.Steering.Schedule = cycle(schedules, s.Steering.Schedule, d) }},
		{"method", func(s *Settings) string { return s.Steering.Method },
			func(s *Settings, d int) { s.Steering.Method = cycle([]string{"mean", "pca"}, s.Steering.Method, d) }},
		{"do_sample", func(s *Settings) string { return strconv.FormatBool(s.Gen.Sampling()) },
			func(s *Settings, d int) { s.Gen.DoSample = sampling.Ptr(!s.Gen.Sampling()) }},
		{"temperature", func(s *Settings) string { return fnum(s.Gen.Temp()) },
			func(s *Settings, d int) { stepFloat(&s.Gen.Temperature, 1, 0.05, 0.05, 5, d) }},
		{"top_k", func(s *Settings) string { return strconv.Itoa(s.Gen.K()) },
			func(s *Settings, d int) { stepInt(&s.Gen.TopK, 50, 5, 0, 1000, d) }},
		{"top_p", func(s *Settings) string { return fnum(getF(s.Gen.TopP, 1)) },
			func(s *Settings, d int) { stepFloat(&s.Gen.TopP, 1, 0.05, 0.05, 1, d) }},
		{"min_p", func(s *Settings) string { return fnum(getF(s.Gen.MinP, 0)) },
			func(s *Settings, d int) { stepFloat(&s.Gen.MinP, 0, 0.01, 0, 1, d) }},
		{"repetition_penalty", func(s *Settings) string { return fnum(getF(s.Gen.RepetitionPenalty, 1)) },
			func(s *Settings, d int) { stepFloat(&s.Gen.RepetitionPenalty, 1, 0.05, 0.5, 3, d) }},
		{"no_repeat_ngram", func(s *Settings) string { return strconv.Itoa(getI(s.Gen.NoRepeatNgramSize, 0)) },
			func(s *Settings, d int) { stepInt(&s.Gen.NoRepeatNgramSize, 0, 1, 0, 10, d) }},
		{"frequency_penalty", func(s *Settings) string { return fnum(getF(s.Gen.FrequencyPenalty, 0)) },
			func(s *Settings, d int) { stepFloat(&s.Gen.FrequencyPenalty, 0, 0.1, -2, 2, d) }},
		{"presence_penalty", func(s *Settings) string { return fnum(getF(s.Gen.PresencePenalty, 0)) },
			func(s *Settings, d int) { stepFloat(&s.Gen.PresencePenalty, 0, 0.1, -2, 2, d) }},
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
		}},
		{"shared_draws", func(s *Settings) string { return strconv.FormatBool(s.SharedDraws) },
			func(s *Settings, d int) { s.SharedDraws = !s.SharedDraws }},
		{"max_new_tokens", func(s *Settings) string { return strconv.Itoa(getI(s.Gen.MaxNewTokens, 64)) },
			func(s *Settings, d int) { stepInt(&s.Gen.MaxNewTokens, 64, 16, 16, 1024, d) }},
		{"normalize", func(s *Settings) string { return strconv.FormatBool(s.Steering.Normalize) },
			func(s *Settings, d int) { s.Steering.Normalize = !s.Steering.Normalize }},
	}
}

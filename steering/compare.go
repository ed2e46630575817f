package steering

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/mlx-genkit/genkit/engine"
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
	// ResampleSuspect resamples a lane once when its text has digit, LaTeX
	// or garbage runs the prompt did not have (see Suspect).
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

var (
	digitRun = regexp.MustCompile(`\d{5,}`)
	latexRun = regexp.MustCompile(`\\[a-zA-Z]{2,}|\$[^$\n]{1,80}\$|\\\(|\\\[`)
)

// Suspect reports whether text has a pattern its prompt did not: a run of 5
// or more digits, LaTeX (a backslash command, $...$, \( or \[), or garbage
// (a punctuation character 6 times in a row, or a short chunk repeated 8
// times).
func Suspect(prompt, text string) bool {
	for _, re := range []*regexp.Regexp{digitRun, latexRun} {
		if re.MatchString(text) && !re.MatchString(prompt) {
			return true
		}
	}
	return garbage(text) && !garbage(prompt)
}

// garbage finds a punctuation character 6 times in a row, or one short word
// (1-3 characters) 8 times in a row.
func garbage(text string) bool {
	run, last := 0, rune(0)
	for _, r := range text {
		if r == last && !unicode.IsSpace(r) && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			run++
			if run >= 6 {
				return true
			}
		} else {
			run = 1
		}
		last = r
	}
	words := strings.Fields(text)
	rep := 1
	for i := 1; i < len(words); i++ {
		if words[i] == words[i-1] && len(words[i]) <= 3 {
			rep++
			if rep >= 8 {
				return true
			}
		} else {
			rep = 1
		}
	}
	return false
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
		badBase := Suspect(promptText, text(out.Base))
		badSteered := !resampled && Suspect(promptText, text(out.Steered))
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

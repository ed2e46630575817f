package sampling

import (
	"fmt"
	"sort"
)

// TransformersIssues lists, by field, what transformers'
// GenerationConfig.validate(strict=True) (5.x) raises on for c: sampling-only
// fields set to a non-default value while do_sample is not true (min_p at
// any value), beam-only fields without beam search, num_return_sequences
// above what the mode can return, max_new_tokens <= 0, a negative
// pad_token_id and a forced token that is also suppressed.
// sampling/testdata/hf_strict.json holds transformers' own verdicts, which
// a test compares with these.
func (c *GenerationConfig) TransformersIssues() map[string]string {
	issues := map[string]string{}
	if !c.Sampling() {
		const why = "only used when sampling (do_sample is not true)"
		if c.Temperature != nil && *c.Temperature != 1 {
			issues["temperature"] = why
		}
		if c.TopP != nil && *c.TopP != 1 {
			issues["top_p"] = why
		}
		if c.MinP != nil {
			issues["min_p"] = why
		}
		if c.TypicalP != nil && *c.TypicalP != 1 {
			issues["typical_p"] = why
		}
		if c.TopK != nil && *c.TopK != 50 {
			issues["top_k"] = why
		}
		if c.EpsilonCutoff != nil && *c.EpsilonCutoff != 0 {
			issues["epsilon_cutoff"] = why
		}
		if c.EtaCutoff != nil && *c.EtaCutoff != 0 {
			issues["eta_cutoff"] = why
		}
	}
	if c.Beams() == 1 {
		const why = "only used in beam search (num_beams is 1)"
		if e := c.EarlyStopping; e != nil && (e.Never || e.Value) {
			issues["early_stopping"] = why
		}
		if c.LengthPenalty != nil && *c.LengthPenalty != 1 {
			issues["length_penalty"] = why
		}
	}
	if n := c.NumReturnSequences; n != nil && *n > 1 {
		switch {
		case c.Beams() == 1 && !c.Sampling():
			issues["num_return_sequences"] = "greedy decoding returns one sequence"
		case c.Beams() > 1 && *n > c.Beams():
			issues["num_return_sequences"] = "more than num_beams"
		}
	}
	if c.MaxNewTokens != nil && *c.MaxNewTokens <= 0 {
		issues["max_new_tokens"] = "must be greater than 0"
	}
	if c.PadTokenID != nil && *c.PadTokenID < 0 {
		issues["pad_token_id"] = "must not be negative"
	}
	if len(c.SuppressTokens) > 0 {
		for _, f := range []struct {
			name string
			id   *int
		}{{"forced_bos_token_id", c.ForcedBOSTokenID}, {"forced_eos_token_id", c.ForcedEOSTokenID}} {
			if f.id != nil && contains(c.SuppressTokens, *f.id) {
				issues[f.name] = "the forced token is also suppressed"
			}
		}
	}
	return issues
}

// GenkitOnly are the fields genkit reads that transformers' GenerationConfig
// does not have (they act through genkit's own processors and RNG).
var GenkitOnly = []string{"frequency_penalty", "presence_penalty", "seed"}

// ForTransformers is c as a generation_config.json transformers accepts
// under validate(strict=True), with the same decoding: genkit-only fields
// (GenkitOnly) are left out, and so is every field TransformersIssues names
// (a field the config's mode never reads, such as temperature when greedy,
// so leaving it out changes nothing; a forced token that is also suppressed
// loses the forcing, as genkit's suppression wins there too). dropped names
// each field left out with why, sorted.
func (c *GenerationConfig) ForTransformers() (out *GenerationConfig, dropped []string) {
	cp := *c
	out = &cp
	out.unknown = nil
	if out.FrequencyPenalty != nil {
		dropped = append(dropped, "frequency_penalty: genkit's own (OpenAI-style) penalty, not a transformers field")
		out.FrequencyPenalty = nil
	}
	if out.PresencePenalty != nil {
		dropped = append(dropped, "presence_penalty: genkit's own (OpenAI-style) penalty, not a transformers field")
		out.PresencePenalty = nil
	}
	if out.Seed != nil {
		dropped = append(dropped, "seed: transformers seeds globally (torch.manual_seed)")
		out.Seed = nil
	}
	issues := out.TransformersIssues()
	clear := map[string]func(){
		"temperature": func() { out.Temperature = nil }, "top_p": func() { out.TopP = nil },
		"min_p": func() { out.MinP = nil }, "typical_p": func() { out.TypicalP = nil },
		"top_k": func() { out.TopK = nil }, "epsilon_cutoff": func() { out.EpsilonCutoff = nil },
		"eta_cutoff": func() { out.EtaCutoff = nil }, "early_stopping": func() { out.EarlyStopping = nil },
		"length_penalty": func() { out.LengthPenalty = nil }, "num_return_sequences": func() { out.NumReturnSequences = nil },
		"max_new_tokens": func() { out.MaxNewTokens = nil }, "pad_token_id": func() { out.PadTokenID = nil },
		"forced_bos_token_id": func() { out.ForcedBOSTokenID = nil }, "forced_eos_token_id": func() { out.ForcedEOSTokenID = nil },
	}
	for field, why := range issues {
		clear[field]()
		dropped = append(dropped, fmt.Sprintf("%s: %s", field, why))
	}
	sort.Strings(dropped)
	return out, dropped
}

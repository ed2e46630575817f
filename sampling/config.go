package sampling

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/mlx-genkit/genkit/internal/atomicfile"
)

// GenerationConfig holds generation settings under Hugging Face's field
// names (generation_config.json). Unset fields are nil and take HF's
// effective defaults; FrequencyPenalty, PresencePenalty and Seed are
// genkit's additions.
type GenerationConfig struct {
	MaxLength          *int  `json:"max_length,omitempty"`
	MaxNewTokens       *int  `json:"max_new_tokens,omitempty"`
	MinLength          *int  `json:"min_length,omitempty"`
	MinNewTokens       *int  `json:"min_new_tokens,omitempty"`
	DoSample           *bool `json:"do_sample,omitempty"`
	NumBeams           *int  `json:"num_beams,omitempty"`
	NumReturnSequences *int  `json:"num_return_sequences,omitempty"`

	Temperature   *float64 `json:"temperature,omitempty"`
	TopK          *int     `json:"top_k,omitempty"`
	TopP          *float64 `json:"top_p,omitempty"`
	MinP          *float64 `json:"min_p,omitempty"`
	TypicalP      *float64 `json:"typical_p,omitempty"`
	EpsilonCutoff *float64 `json:"epsilon_cutoff,omitempty"`
	EtaCutoff     *float64 `json:"eta_cutoff,omitempty"`

	RepetitionPenalty             *float64          `json:"repetition_penalty,omitempty"`
	NoRepeatNgramSize             *int              `json:"no_repeat_ngram_size,omitempty"`
	BadWordsIDs                   [][]int           `json:"bad_words_ids,omitempty"`
	SequenceBias                  SequenceBias      `json:"sequence_bias,omitempty"`
	ForcedBOSTokenID              *int              `json:"forced_bos_token_id,omitempty"`
	ForcedEOSTokenID              *int              `json:"forced_eos_token_id,omitempty"`
	RemoveInvalidValues           *bool             `json:"remove_invalid_values,omitempty"`
	ExponentialDecayLengthPenalty *DecayPenalty     `json:"exponential_decay_length_penalty,omitempty"`
	SuppressTokens                []int             `json:"suppress_tokens,omitempty"`
	BeginSuppressTokens           []int             `json:"begin_suppress_tokens,omitempty"`
	RenormalizeLogits             *bool             `json:"renormalize_logits,omitempty"`
	LengthPenalty                 *float64          `json:"length_penalty,omitempty"`
	EarlyStopping                 *EarlyStopping    `json:"early_stopping,omitempty"`
	BOSTokenID                    *int              `json:"bos_token_id,omitempty"`
	EOSTokenID                    IDs               `json:"eos_token_id,omitempty"`
	PadTokenID                    *int              `json:"pad_token_id,omitempty"`
	StopStrings                   Strings           `json:"stop_strings,omitempty"`
	MaxTime                       *float64          `json:"max_time,omitempty"`
	FrequencyPenalty              *float64          `json:"frequency_penalty,omitempty"`
	PresencePenalty               *float64          `json:"presence_penalty,omitempty"`
	Seed                          *uint64           `json:"seed,omitempty"`
	unknown                       map[string]string // fields read but not known, for warnings
}

// Ptr returns a pointer to v, for filling optional fields.
func Ptr[T any](v T) *T { return &v }

func or[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// Effective values (HF's defaults where a field is unset).

// Sampling reports whether tokens are drawn (do_sample).
func (c *GenerationConfig) Sampling() bool { return or(c.DoSample, false) }

// Beams is num_beams (default 1).
func (c *GenerationConfig) Beams() int { return or(c.NumBeams, 1) }

// Temp is temperature (default 1.0).
func (c *GenerationConfig) Temp() float64 { return or(c.Temperature, 1.0) }

// K is top_k (default 50; 0 disables).
func (c *GenerationConfig) K() int { return or(c.TopK, 50) }

// MaxNew is the number of new tokens allowed for a prompt of promptLen
// tokens: max_new_tokens, else max_length - promptLen (max_length default 20).
func (c *GenerationConfig) MaxNew(promptLen int) int {
	if c.MaxNewTokens != nil {
		return *c.MaxNewTokens
	}
	return max(0, or(c.MaxLength, 20)-promptLen)
}

// MaxLen is the total length cap used by forced_eos_token_id.
func (c *GenerationConfig) MaxLen(promptLen int) int {
	if c.MaxNewTokens != nil {
		return promptLen + *c.MaxNewTokens
	}
	return or(c.MaxLength, 20)
}

// IDs is a token id list that reads from a JSON number or array.
type IDs []int

// UnmarshalJSON accepts 5 or [5, 6].
func (ids *IDs) UnmarshalJSON(b []byte) error {
	var one int
	if json.Unmarshal(b, &one) == nil {
		*ids = IDs{one}
		return nil
	}
	var many []int
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("want a token id or a list of ids: %w", err)
	}
	*ids = many
	return nil
}

// Strings is a string list that reads from a JSON string or array.
type Strings []string

// UnmarshalJSON accepts "x" or ["x", "y"].
func (s *Strings) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = Strings{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("want a string or a list of strings: %w", err)
	}
	*s = many
	return nil
}

// EarlyStopping is beam search's stopping rule: true, false or "never".
type EarlyStopping struct {
	Never bool
	Value bool
}

// UnmarshalJSON reads true, false or "never".
func (e *EarlyStopping) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		if s != "never" {
			return fmt.Errorf("early_stopping: want true, false or \"never\", got %q", s)
		}
		*e = EarlyStopping{Never: true}
		return nil
	}
	return json.Unmarshal(b, &e.Value)
}

// MarshalJSON writes true, false or "never".
func (e EarlyStopping) MarshalJSON() ([]byte, error) {
	if e.Never {
		return []byte(`"never"`), nil
	}
	return json.Marshal(e.Value)
}

// DecayPenalty is exponential_decay_length_penalty: [start_index, decay_factor].
type DecayPenalty struct {
	Start  int
	Factor float64
}

// UnmarshalJSON reads [start, factor].
func (d *DecayPenalty) UnmarshalJSON(b []byte) error {
	var pair []float64
	if err := json.Unmarshal(b, &pair); err != nil || len(pair) != 2 {
		return fmt.Errorf("exponential_decay_length_penalty: want [start_index, decay_factor]")
	}
	d.Start, d.Factor = int(pair[0]), pair[1]
	return nil
}

// MarshalJSON writes [start, factor].
func (d DecayPenalty) MarshalJSON() ([]byte, error) { return json.Marshal([]any{d.Start, d.Factor}) }

// SequenceBias adds a bias to the last token of a sequence when its prefix
// was just generated: [[[ids...], bias], ...] in JSON.
type SequenceBias []BiasEntry

// BiasEntry is one sequence and its bias.
type BiasEntry struct {
	Tokens []int
	Bias   float64
}

// UnmarshalJSON reads [[[ids], bias], ...].
func (s *SequenceBias) UnmarshalJSON(b []byte) error {
	var raw [][2]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("sequence_bias: want [[[token ids], bias], ...]: %w", err)
	}
	for _, r := range raw {
		var e BiasEntry
		if err := json.Unmarshal(r[0], &e.Tokens); err != nil {
			return fmt.Errorf("sequence_bias: %w", err)
		}
		if err := json.Unmarshal(r[1], &e.Bias); err != nil {
			return fmt.Errorf("sequence_bias: %w", err)
		}
		*s = append(*s, e)
	}
	return nil
}

// MarshalJSON writes [[[ids], bias], ...].
func (s SequenceBias) MarshalJSON() ([]byte, error) {
	out := make([][2]any, len(s))
	for i, e := range s {
		out[i] = [2]any{e.Tokens, e.Bias}
	}
	return json.Marshal(out)
}

// Merge overlays JSON (a generation_config.json) onto c: only the fields the
// JSON names change. Unknown fields are remembered for Warnings.
func (c *GenerationConfig) Merge(data []byte) error {
	if err := json.Unmarshal(data, c); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	known := map[string]bool{}
	for _, f := range jsonFieldNames() {
		known[f] = true
	}
	for k, v := range all {
		if !known[k] && !ignoredField[k] {
			if c.unknown == nil {
				c.unknown = map[string]string{}
			}
			c.unknown[k] = string(v)
		}
	}
	return nil
}

// ignoredField are generation_config.json fields with no effect on decoding
// a single sequence (bookkeeping, encoder-decoder or unsupported-by-design).
var ignoredField = map[string]bool{"transformers_version": true, "_from_model_config": true,
	"use_cache": true, "output_scores": true, "output_logits": true, "return_dict_in_generate": true,
	"output_attentions": true, "output_hidden_states": true, "decoder_start_token_id": true,
	"cache_implementation": true, "trust_remote_code": true}

// Warnings lists fields read from files that genkit does not support.
func (c *GenerationConfig) Warnings() []string {
	var out []string
	for k := range c.unknown {
		out = append(out, fmt.Sprintf("generation config field %q is not supported and is ignored", k))
	}
	return out
}

// LoadConfig reads a generation_config.json.
func LoadConfig(path string) (*GenerationConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load generation config: %w", err)
	}
	c := &GenerationConfig{}
	if err := c.Merge(data); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Save writes c as generation_config.json (atomically).
func (c *GenerationConfig) Save(path string) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(data, '\n'), 0o644)
}

// Validate checks the settings, naming the field at fault.
func (c *GenerationConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Sampling() {
		if t := c.Temp(); !(t > 0) {
			bad("temperature must be > 0 when do_sample is true (got %g); use do_sample=false for greedy decoding", t)
		}
	}
	if k := c.K(); k < 0 {
		bad("top_k must be >= 0 (got %d)", k)
	}
	if p := or(c.TopP, 1); !(p > 0 && p <= 1) {
		bad("top_p must be in (0, 1] (got %g)", p)
	}
	if p := or(c.MinP, 0); !(p >= 0 && p <= 1) {
		bad("min_p must be in [0, 1] (got %g)", p)
	}
	if p := or(c.TypicalP, 1); !(p > 0 && p <= 1) {
		bad("typical_p must be in (0, 1] (got %g)", p)
	}
	if e := or(c.EpsilonCutoff, 0); !(e >= 0 && e < 1) {
		bad("epsilon_cutoff must be in [0, 1) (got %g)", e)
	}
	if e := or(c.EtaCutoff, 0); !(e >= 0 && e < 1) {
		bad("eta_cutoff must be in [0, 1) (got %g)", e)
	}
	if p := or(c.RepetitionPenalty, 1); !(p > 0) {
		bad("repetition_penalty must be > 0 (got %g)", p)
	}
	if n := or(c.NoRepeatNgramSize, 0); n < 0 {
		bad("no_repeat_ngram_size must be >= 0 (got %d)", n)
	}
	if c.MaxNewTokens != nil && *c.MaxNewTokens < 0 {
		bad("max_new_tokens must be >= 0 (got %d)", *c.MaxNewTokens)
	}
	if b := c.Beams(); b < 1 {
		bad("num_beams must be >= 1 (got %d)", b)
	}
	if n := or(c.NumReturnSequences, 1); n < 1 || n > c.Beams() && c.Beams() > 1 {
		bad("num_return_sequences must be between 1 and num_beams (got %d, num_beams %d)", n, c.Beams())
	}
	if c.Beams() > 1 && c.Sampling() {
		bad("beam search with do_sample (beam sampling) is not supported: set do_sample=false or num_beams=1")
	}
	for _, w := range c.BadWordsIDs {
		if len(w) == 0 {
			bad("bad_words_ids holds an empty sequence")
		}
	}
	for _, e := range c.SequenceBias {
		if len(e.Tokens) == 0 {
			bad("sequence_bias holds an empty sequence")
		}
	}
	if d := c.ExponentialDecayLengthPenalty; d != nil && d.Factor < 1 {
		bad("exponential_decay_length_penalty factor must be >= 1 (got %g)", d.Factor)
	}
	if t := or(c.MaxTime, 0); t < 0 {
		bad("max_time must be >= 0 (got %g)", t)
	}
	return errors.Join(errs...)
}

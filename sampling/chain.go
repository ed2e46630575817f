package sampling

// Chain is an ordered list of processors.
type Chain []Processor

// Process runs every processor on one lane's scores.
func (c Chain) Process(l *Lane, scores []float32) {
	for _, p := range c {
		p.Process(l, scores)
	}
}

// Names lists the processors in order.
func (c Chain) Names() []string {
	out := make([]string, len(c))
	for i, p := range c {
		out[i] = p.Name()
	}
	return out
}

// BuildChain assembles the processors for cfg in transformers' order:
// sequence bias, repetition penalty, no-repeat n-gram, bad words, minimum
// length, minimum new tokens, forced BOS/EOS, invalid-value removal,
// exponential length decay, suppression, then custom processors (genkit's
// frequency/presence penalties, then extra, e.g. steering's logit bias),
// then when sampling temperature -> top-k -> top-p -> min-p -> typical ->
// epsilon -> eta, and finally renormalization. eos holds the end ids;
// promptLen is the prompt length (for begin_suppress_tokens).
func BuildChain(cfg *GenerationConfig, eos []int, promptLen int, extra ...Processor) Chain {
	var c Chain
	if len(cfg.SequenceBias) > 0 {
		c = append(c, &SequenceBiasProcessor{Bias: cfg.SequenceBias})
	}
	if p := or(cfg.RepetitionPenalty, 1); p != 1 {
		c = append(c, &RepetitionPenalty{Penalty: float32(p)})
	}
	if n := or(cfg.NoRepeatNgramSize, 0); n > 0 {
		c = append(c, &NoRepeatNGram{N: n})
	}
	if len(cfg.BadWordsIDs) > 0 {
		var words [][]int
		for _, w := range cfg.BadWordsIDs {
			if len(w) == 1 && contains(eos, w[0]) {
				continue // HF never bans EOS through bad_words_ids
			}
			words = append(words, w)
		}
		if len(words) > 0 {
			c = append(c, &BadWords{Words: words})
		}
	}
	if n := or(cfg.MinLength, 0); n > 0 && len(eos) > 0 {
		c = append(c, &MinLength{MinLen: n, EOS: eos})
	}
	if n := or(cfg.MinNewTokens, 0); n > 0 && len(eos) > 0 {
		c = append(c, &MinNewTokens{MinNew: n, EOS: eos})
	}
	if cfg.ForcedBOSTokenID != nil {
		c = append(c, &ForcedBOS{BOS: *cfg.ForcedBOSTokenID})
	}
	if cfg.ForcedEOSTokenID != nil {
		c = append(c, &ForcedEOS{MaxLen: cfg.MaxLen(promptLen), EOS: []int{*cfg.ForcedEOSTokenID}})
	}
	if or(cfg.RemoveInvalidValues, false) {
		c = append(c, InfNanRemove{})
	}
	if d := cfg.ExponentialDecayLengthPenalty; d != nil {
		c = append(c, &DecayLength{Start: d.Start, Factor: d.Factor, EOS: eos})
	}
	if len(cfg.SuppressTokens) > 0 {
		c = append(c, &Suppress{IDs: cfg.SuppressTokens})
	}
	if len(cfg.BeginSuppressTokens) > 0 {
		c = append(c, &SuppressAtBegin{IDs: cfg.BeginSuppressTokens})
	}
	if f, p := or(cfg.FrequencyPenalty, 0), or(cfg.PresencePenalty, 0); f != 0 || p != 0 {
		c = append(c, &FrequencyPresence{Frequency: float32(f), Presence: float32(p)})
	}
	c = append(c, extra...)
	if cfg.Sampling() {
		const keep = 1
		if t := cfg.Temp(); t != 1 {
			c = append(c, &Temperature{T: float32(t)})
		}
		if k := cfg.K(); k != 0 {
			c = append(c, &TopK{K: k, MinKeep: keep})
		}
		if p := or(cfg.TopP, 1); p < 1 {
			c = append(c, &TopP{P: p, MinKeep: keep})
		}
		if cfg.MinP != nil {
			c = append(c, &MinP{MinP: *cfg.MinP, MinKeep: keep})
		}
		if p := or(cfg.TypicalP, 1); p < 1 {
			c = append(c, &Typical{Mass: p, MinKeep: keep})
		}
		if e := or(cfg.EpsilonCutoff, 0); e > 0 && e < 1 {
			c = append(c, &Epsilon{E: e, MinKeep: keep})
		}
		if e := or(cfg.EtaCutoff, 0); e > 0 && e < 1 {
			c = append(c, &Eta{E: e, MinKeep: keep})
		}
	}
	if or(cfg.RenormalizeLogits, false) {
		c = append(c, LogSoftmax{})
	}
	return c
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

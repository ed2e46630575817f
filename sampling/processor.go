package sampling

import (
	"math"
	"sort"
)

// Lane is what processors know about one sequence being decoded.
type Lane struct {
	// IDs holds the prompt followed by every token generated so far.
	IDs []int
	// PromptLen is the number of prompt tokens at the start of IDs.
	PromptLen int
}

// Generated is the part of IDs produced by generation.
func (l *Lane) Generated() []int { return l.IDs[l.PromptLen:] }

// Processor rewrites one lane's next-token scores in place, like a
// transformers LogitsProcessor.
type Processor interface {
	Process(l *Lane, scores []float32)
	Name() string
}

var negInf = float32(math.Inf(-1))

// softmax64 returns softmax(scores) in float64 (-inf gives 0).
func softmax64(scores []float32) []float64 {
	m := float32(math.Inf(-1))
	for _, s := range scores {
		if s > m {
			m = s
		}
	}
	p := make([]float64, len(scores))
	if math.IsInf(float64(m), -1) || m != m {
		return p
	}
	var z float64
	for i, s := range scores {
		if s == negInf {
			continue
		}
		p[i] = math.Exp(float64(s) - float64(m))
		z += p[i]
	}
	for i := range p {
		p[i] /= z
	}
	return p
}

// kthLargest is the k-th largest score (k >= 1), found by quickselect.
func kthLargest(scores []float32, k int) float32 {
	k = min(max(k, 1), len(scores))
	if k == 1 {
		m := scores[0]
		for _, v := range scores[1:] {
			if v > m {
				m = v
			}
		}
		return m
	}
	tmp := append([]float32(nil), scores...)
	lo, hi, want := 0, len(tmp)-1, k-1 // index in descending order
	for lo < hi {
		pivot := tmp[(lo+hi)/2]
		i, j := lo, hi
		for i <= j {
			for tmp[i] > pivot {
				i++
			}
			for tmp[j] < pivot {
				j--
			}
			if i <= j {
				tmp[i], tmp[j] = tmp[j], tmp[i]
				i++
				j--
			}
		}
		switch {
		case want <= j:
			hi = j
		case want >= i:
			lo = i
		default:
			return tmp[want]
		}
	}
	return tmp[want]
}

// finite lists the indices whose score is not -inf (removed tokens have
// probability zero and never change a cumulative sum).
func finite(scores []float32) []int {
	out := make([]int, 0, 64)
	for i, s := range scores {
		if !math.IsInf(float64(s), -1) {
			out = append(out, i)
		}
	}
	return out
}

// argsortAsc returns indices ordering v ascending (stable).
func argsortAsc[T float32 | float64](v []T) []int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return v[idx[a]] < v[idx[b]] })
	return idx
}

// ---- processors applied before sampling warpers, in HF's order ----

// SequenceBiasProcessor adds biases to tokens that complete given sequences.
type SequenceBiasProcessor struct{ Bias SequenceBias }

// Name implements Processor.
func (p *SequenceBiasProcessor) Name() string { return "sequence_bias" }

// Process implements Processor.
func (p *SequenceBiasProcessor) Process(l *Lane, scores []float32) {
	for _, e := range p.Bias {
		last := e.Tokens[len(e.Tokens)-1]
		if last < 0 || last >= len(scores) {
			continue
		}
		if prefixMatches(l.IDs, e.Tokens[:len(e.Tokens)-1]) {
			scores[last] += float32(e.Bias)
		}
	}
}

func prefixMatches(ids, prefix []int) bool {
	if len(prefix) > len(ids) {
		return false
	}
	tail := ids[len(ids)-len(prefix):]
	for i := range prefix {
		if tail[i] != prefix[i] {
			return false
		}
	}
	return true
}

// RepetitionPenalty divides positive scores and multiplies negative ones of
// every token already in the sequence (prompt included) by Penalty.
type RepetitionPenalty struct{ Penalty float32 }

// Name implements Processor.
func (p *RepetitionPenalty) Name() string { return "repetition_penalty" }

// Process implements Processor.
func (p *RepetitionPenalty) Process(l *Lane, scores []float32) {
	seen := make(map[int]bool, len(l.IDs))
	for _, id := range l.IDs {
		if seen[id] || id < 0 || id >= len(scores) {
			continue
		}
		seen[id] = true
		if s := scores[id]; s < 0 {
			scores[id] = s * p.Penalty
		} else {
			scores[id] = s / p.Penalty
		}
	}
}

// NoRepeatNGram bans tokens that would repeat an n-gram of the sequence.
type NoRepeatNGram struct{ N int }

// Name implements Processor.
func (p *NoRepeatNGram) Name() string { return "no_repeat_ngram_size" }

// Process implements Processor.
func (p *NoRepeatNGram) Process(l *Lane, scores []float32) {
	ids, n := l.IDs, p.N
	if len(ids)+1 < n || n <= 0 {
		return
	}
	prefix := ids[len(ids)-n+1:]
	for start := 0; start+n <= len(ids); start++ {
		match := true
		for j := 0; j < n-1; j++ {
			if ids[start+j] != prefix[j] {
				match = false
				break
			}
		}
		if match {
			if t := ids[start+n-1]; t >= 0 && t < len(scores) {
				scores[t] = negInf
			}
		}
	}
}

// BadWords bans single tokens always and the last token of longer sequences
// when their prefix was just generated.
type BadWords struct{ Words [][]int }

// Name implements Processor.
func (p *BadWords) Name() string { return "bad_words_ids" }

// Process implements Processor.
func (p *BadWords) Process(l *Lane, scores []float32) {
	for _, w := range p.Words {
		last := w[len(w)-1]
		if last >= 0 && last < len(scores) && prefixMatches(l.IDs, w[:len(w)-1]) {
			scores[last] = negInf
		}
	}
}

// MinLength keeps EOS away until the whole sequence has MinLen tokens.
type MinLength struct {
	MinLen int
	EOS    []int
}

// Name implements Processor.
func (p *MinLength) Name() string { return "min_length" }

// Process implements Processor.
func (p *MinLength) Process(l *Lane, scores []float32) {
	if len(l.IDs) < p.MinLen {
		banAll(scores, p.EOS)
	}
}

// MinNewTokens keeps EOS away until MinNew tokens were generated.
type MinNewTokens struct {
	MinNew int
	EOS    []int
}

// Name implements Processor.
func (p *MinNewTokens) Name() string { return "min_new_tokens" }

// Process implements Processor.
func (p *MinNewTokens) Process(l *Lane, scores []float32) {
	if len(l.IDs)-l.PromptLen < p.MinNew {
		banAll(scores, p.EOS)
	}
}

func banAll(scores []float32, ids []int) {
	for _, id := range ids {
		if id >= 0 && id < len(scores) {
			scores[id] = negInf
		}
	}
}

// forceOnly makes id the only possible token.
func forceOnly(scores []float32, id int) {
	for i := range scores {
		scores[i] = negInf
	}
	if id >= 0 && id < len(scores) {
		scores[id] = 0
	}
}

// ForcedBOS forces BOS as the first token of a sequence of length 1.
type ForcedBOS struct{ BOS int }

// Name implements Processor.
func (p *ForcedBOS) Name() string { return "forced_bos_token_id" }

// Process implements Processor.
func (p *ForcedBOS) Process(l *Lane, scores []float32) {
	if len(l.IDs) == 1 {
		forceOnly(scores, p.BOS)
	}
}

// ForcedEOS forces EOS when the sequence is one token short of MaxLen.
type ForcedEOS struct {
	MaxLen int
	EOS    []int
}

// Name implements Processor.
func (p *ForcedEOS) Name() string { return "forced_eos_token_id" }

// Process implements Processor.
func (p *ForcedEOS) Process(l *Lane, scores []float32) {
	if len(l.IDs) == p.MaxLen-1 {
		for i := range scores {
			scores[i] = negInf
		}
		for _, e := range p.EOS {
			if e >= 0 && e < len(scores) {
				scores[e] = 0
			}
		}
	}
}

// InfNanRemove replaces NaN by 0 and ±Inf by the largest finite float32s.
type InfNanRemove struct{}

// Name implements Processor.
func (InfNanRemove) Name() string { return "remove_invalid_values" }

// Process implements Processor.
func (InfNanRemove) Process(_ *Lane, scores []float32) {
	for i, s := range scores {
		switch {
		case s != s:
			scores[i] = 0
		case math.IsInf(float64(s), 1):
			scores[i] = math.MaxFloat32
		case math.IsInf(float64(s), -1):
			scores[i] = -math.MaxFloat32
		}
	}
}

// DecayLength raises EOS scores exponentially after Start generated tokens.
type DecayLength struct {
	Start  int
	Factor float64
	EOS    []int
}

// Name implements Processor.
func (p *DecayLength) Name() string { return "exponential_decay_length_penalty" }

// Process implements Processor.
func (p *DecayLength) Process(l *Lane, scores []float32) {
	start := p.Start + l.PromptLen
	if cur := len(l.IDs); cur > start {
		k := float64(cur - start)
		for _, e := range p.EOS {
			if e >= 0 && e < len(scores) {
				s := scores[e]
				scores[e] = s + float32(math.Abs(float64(s)))*float32(math.Pow(p.Factor, k)-1)
			}
		}
	}
}

// Suppress bans tokens always.
type Suppress struct{ IDs []int }

// Name implements Processor.
func (p *Suppress) Name() string { return "suppress_tokens" }

// Process implements Processor.
func (p *Suppress) Process(_ *Lane, scores []float32) { banAll(scores, p.IDs) }

// SuppressAtBegin bans tokens at the first generated position.
type SuppressAtBegin struct{ IDs []int }

// Name implements Processor.
func (p *SuppressAtBegin) Name() string { return "begin_suppress_tokens" }

// Process implements Processor.
func (p *SuppressAtBegin) Process(l *Lane, scores []float32) {
	if len(l.IDs) == l.PromptLen {
		banAll(scores, p.IDs)
	}
}

// FrequencyPresence subtracts presence*(count>0) + frequency*count for every
// generated token (OpenAI's penalties; genkit's addition).
type FrequencyPresence struct{ Frequency, Presence float32 }

// Name implements Processor.
func (p *FrequencyPresence) Name() string { return "frequency_presence_penalty" }

// Process implements Processor.
func (p *FrequencyPresence) Process(l *Lane, scores []float32) {
	counts := map[int]int{}
	for _, id := range l.Generated() {
		counts[id]++
	}
	for id, c := range counts {
		if id >= 0 && id < len(scores) {
			scores[id] -= p.Presence + p.Frequency*float32(c)
		}
	}
}

// Bias adds a constant vector to the scores (steering's logit bias uses it).
type Bias struct{ Values []float32 }

// Name implements Processor.
func (p *Bias) Name() string { return "logit_bias" }

// Process implements Processor.
func (p *Bias) Process(_ *Lane, scores []float32) {
	for i := range scores {
		if i < len(p.Values) {
			scores[i] += p.Values[i]
		}
	}
}

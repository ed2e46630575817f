package sampling

import (
	"math"
	"sort"
)

// Temperature divides scores by T.
type Temperature struct{ T float32 }

// Name implements Processor.
func (p *Temperature) Name() string { return "temperature" }

// Process implements Processor.
func (p *Temperature) Process(_ *Lane, scores []float32) {
	for i := range scores {
		scores[i] /= p.T
	}
}

// TopK keeps the scores at least as large as the K-th largest.
type TopK struct{ K, MinKeep int }

// Name implements Processor.
func (p *TopK) Name() string { return "top_k" }

// Process implements Processor.
func (p *TopK) Process(_ *Lane, scores []float32) {
	k := min(max(p.K, p.MinKeep), len(scores))
	th := kthLargest(scores, k)
	for i, s := range scores {
		if s < th {
			scores[i] = negInf
		}
	}
}

// TopP keeps the smallest set of most likely tokens whose probability
// reaches P (nucleus sampling).
type TopP struct {
	P       float64
	MinKeep int
}

// Name implements Processor.
func (p *TopP) Name() string { return "top_p" }

// Process implements Processor.
func (p *TopP) Process(_ *Lane, scores []float32) {
	probs := softmax64(scores)
	order := argsortAsc(scores)
	var cum float64
	n := len(order)
	for r, i := range order {
		cum += probs[i]
		if cum <= 1-p.P && r < n-p.MinKeep {
			scores[i] = negInf
		}
	}
}

// MinP removes tokens less likely than MinP times the most likely one.
type MinP struct {
	MinP    float64
	MinKeep int
}

// Name implements Processor.
func (p *MinP) Name() string { return "min_p" }

// Process implements Processor.
func (p *MinP) Process(_ *Lane, scores []float32) {
	probs := softmax64(scores)
	top := 0.0
	for _, q := range probs {
		top = math.Max(top, q)
	}
	keep := keepTop(scores, p.MinKeep)
	for i, q := range probs {
		if q < p.MinP*top && !keep[i] {
			scores[i] = negInf
		}
	}
}

// keepTop marks the n highest-scoring tokens; among equal scores lower ids
// come first (HF's stable descending sort).
func keepTop(scores []float32, n int) map[int]bool {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	keep := make(map[int]bool, n)
	for _, i := range idx[:min(n, len(idx))] {
		keep[i] = true
	}
	return keep
}

// Typical keeps the tokens whose information content is closest to the
// entropy, up to probability mass Mass (locally typical sampling).
type Typical struct {
	Mass    float64
	MinKeep int
}

// Name implements Processor.
func (p *Typical) Name() string { return "typical_p" }

// Process implements Processor.
func (p *Typical) Process(_ *Lane, scores []float32) {
	probs := softmax64(scores)
	var ent float64
	for _, q := range probs {
		if q > 0 {
			ent -= q * math.Log(q)
		}
	}
	shifted := make([]float64, len(scores))
	for i, q := range probs {
		shifted[i] = math.Abs(-math.Log(q) - ent)
	}
	order := argsortAsc(shifted)
	var cum float64
	last := 0
	for _, i := range order {
		cum += probs[i]
		if cum < p.Mass {
			last++
		}
	}
	last = min(last, len(order)-1)
	th := shifted[order[last]]
	for r, i := range order {
		if shifted[i] > th && r >= p.MinKeep {
			scores[i] = negInf
		}
	}
}

// Epsilon removes tokens whose probability is below E.
type Epsilon struct {
	E       float64
	MinKeep int
}

// Name implements Processor.
func (p *Epsilon) Name() string { return "epsilon_cutoff" }

// Process implements Processor.
func (p *Epsilon) Process(_ *Lane, scores []float32) {
	cutBelow(scores, softmax64(scores), p.E, p.MinKeep)
}

// Eta removes tokens below min(E, sqrt(E) * exp(-entropy)).
type Eta struct {
	E       float64
	MinKeep int
}

// Name implements Processor.
func (p *Eta) Name() string { return "eta_cutoff" }

// Process implements Processor.
func (p *Eta) Process(_ *Lane, scores []float32) {
	probs := softmax64(scores)
	var ent float64
	for _, q := range probs {
		if q > 0 {
			ent -= q * math.Log(q)
		}
	}
	cutBelow(scores, probs, math.Min(p.E, math.Sqrt(p.E)*math.Exp(-ent)), p.MinKeep)
}

func cutBelow(scores []float32, probs []float64, th float64, minKeep int) {
	kth := kthLargest(scores, max(minKeep, 1))
	for i, q := range probs {
		if q < th && scores[i] < kth {
			scores[i] = negInf
		}
	}
}

// LogSoftmax renormalizes scores to log-probabilities (renormalize_logits).
type LogSoftmax struct{}

// Name implements Processor.
func (LogSoftmax) Name() string { return "renormalize_logits" }

// Process implements Processor.
func (LogSoftmax) Process(_ *Lane, scores []float32) {
	m := math.Inf(-1)
	for _, s := range scores {
		m = math.Max(m, float64(s))
	}
	var z float64
	for _, s := range scores {
		z += math.Exp(float64(s) - m)
	}
	lse := m + math.Log(z)
	for i, s := range scores {
		scores[i] = float32(float64(s) - lse)
	}
}

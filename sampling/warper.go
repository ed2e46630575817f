package sampling

import (
	"math"
	"slices"
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

// Process implements Processor. A token is removed when the probability of
// the tokens ranked below it, itself included, is at most 1-P: that is,
// unless the tokens ranked above it hold less than P. Only the most likely
// tokens are sorted, until their mass reaches P.
func (p *TopP) Process(_ *Lane, scores []float32) {
	probs := softmax64(scores)
	cand := finite(scores)
	// Narrow to the tokens above a probability floor that still holds at
	// least P of the mass, lowering the floor until it does.
	top := 0.0
	for _, i := range cand {
		if probs[i] > top {
			top = probs[i]
		}
	}
	for floor := top * 1e-3; floor > 0; floor /= 1e3 {
		var sel []int
		var mass float64
		for _, i := range cand {
			if probs[i] >= floor {
				sel = append(sel, i)
				mass += probs[i]
			}
		}
		if mass >= p.P || floor < 1e-300 {
			cand = sel
			break
		}
	}
	sortDesc(cand, scores)
	var kept []int
	var vals []float32
	var above float64
	for r, i := range cand {
		if above >= p.P && r >= p.MinKeep {
			break
		}
		kept = append(kept, i)
		vals = append(vals, scores[i])
		above += probs[i]
	}
	for i := range scores {
		scores[i] = negInf
	}
	for j, i := range kept {
		scores[i] = vals[j]
	}
}

// sortDesc orders idx by score descending, lower ids first among ties.
func sortDesc(idx []int, scores []float32) {
	type pair struct {
		s float32
		i int
	}
	ps := make([]pair, len(idx))
	for k, i := range idx {
		ps[k] = pair{scores[i], i}
	}
	slices.SortFunc(ps, func(a, b pair) int {
		switch {
		case a.s > b.s:
			return -1
		case a.s < b.s:
			return 1
		}
		return a.i - b.i
	})
	for k := range ps {
		idx[k] = ps[k].i
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
	idx := finite(scores)
	if len(idx) == 0 {
		idx = make([]int, len(scores))
		for i := range idx {
			idx[i] = i
		}
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
	ent := entropy(probs)
	shifted := make([]float64, len(scores))
	for i, q := range probs {
		shifted[i] = math.Abs(-math.Log(q) - ent)
	}
	// Removed tokens (probability 0) sort last with an infinite shift and
	// add nothing to the mass, so only the others need sorting.
	order := finite(scores)
	sort.SliceStable(order, func(a, b int) bool { return shifted[order[a]] < shifted[order[b]] })
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
	// Tokens outside order are -inf already.
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
	ent := entropy(probs)
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
	lse := logSumExp(scores)
	for i, s := range scores {
		scores[i] = float32(float64(s) - lse)
	}
}

package sampling

import "math"

// Softmax returns softmax(scores) in float64 (-inf scores get 0).
func Softmax(scores []float32) []float64 { return softmax64(scores) }

// KLFromTop is KL(P || Q) where P is known by its top tokens (ids and their
// log-probabilities) and Q by full logits: the top tokens' terms plus one
// term for the mass outside them in each distribution. It measures
// agreement with stored reference distributions.
func KLFromTop(ids []int, logp []float64, logits []float32) float64 {
	lz := logSumExp(logits)
	var kl, pm, qm float64
	for i, id := range ids {
		p := math.Exp(logp[i])
		lq := float64(logits[id]) - lz
		kl += p * (logp[i] - lq)
		pm += p
		qm += math.Exp(lq)
	}
	if rp, rq := 1-pm, 1-qm; rp > 1e-12 && rq > 1e-12 {
		kl += rp * math.Log(rp/rq)
	}
	return kl
}

// logSumExp is log(sum(exp(scores))), computed stably in float64.
func logSumExp(scores []float32) float64 {
	m := math.Inf(-1)
	for _, s := range scores {
		m = math.Max(m, float64(s))
	}
	if math.IsInf(m, 0) {
		return m
	}
	var z float64
	for _, s := range scores {
		z += math.Exp(float64(s) - m)
	}
	return m + math.Log(z)
}

// entropy is -sum p log p.
func entropy(probs []float64) float64 {
	var h float64
	for _, q := range probs {
		if q > 0 {
			h -= q * math.Log(q)
		}
	}
	return h
}

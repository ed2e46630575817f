package sampling

import "math"

// Softmax returns softmax(scores) in float64 (-inf scores get 0).
func Softmax(scores []float32) []float64 { return softmax64(scores) }

// KLFromTop is KL(P || Q) where P is known by its top tokens (ids and their
// log-probabilities) and Q by full logits: the top tokens' terms plus one
// term for the mass outside them in each distribution. It measures
// agreement with stored reference distributions.
func KLFromTop(ids []int, logp []float64, logits []float32) float64 {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	var z float64
	for _, v := range logits {
		z += math.Exp(float64(v) - mx)
	}
	lz := mx + math.Log(z)
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

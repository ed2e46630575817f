package engine

import (
	"fmt"

	"github.com/mlx-genkit/genkit/mlx"
)

// Qwen3-MoE: a Qwen3 whose MLPs are mixtures of experts: a router picks
// num_experts_per_tok of num_experts SwiGLU experts per token and sums
// their outputs weighted by the router's softmax (renormalised over the
// chosen ones when norm_topk_prob).
func init() {
	Register(Arch{Name: "qwen3_moe", GGUFName: "qwen3moe", Class: "Qwen3MoeForCausalLM", QKNorm: true})
}

// moeMLP is one sparse MLP: the router and each expert's projections.
type moeMLP struct {
	router          *Linear
	gate, up, down  []*Linear
	topK            int
	normTopK        bool
	experts, hidden int
}

func (e *moeMLP) free() {
	if e == nil {
		return
	}
	for _, l := range e.linears() {
		l.free()
	}
}

func (e *moeMLP) linears() []*Linear {
	out := []*Linear{e.router}
	out = append(out, e.gate...)
	out = append(out, e.up...)
	return append(out, e.down...)
}

// loadMoE loads a sparse MLP stored one expert per tensor (Hugging Face).
func loadMoE(src *tensorSource, cfg *Config, n layerNames, dequantize, gguf bool) (*moeMLP, error) {
	if gguf || n.experts == nil {
		return nil, fmt.Errorf("mixture-of-experts GGUF files are not supported yet (stacked expert tensors); use the Hugging Face checkpoint")
	}
	D, I, E := cfg.HiddenSize, cfg.MoEIntermediateSize, cfg.NumExperts
	e := &moeMLP{topK: cfg.NumExpertsPerTok, normTopK: cfg.NormTopKProb, experts: E, hidden: D}
	var err error
	if e.router, err = src.linear(n.router, E, D, false, dequantize); err != nil {
		return nil, err
	}
	for x := 0; x < E; x++ {
		g, u, d := n.experts(x)
		var lg, lu, ld *Linear
		if lg, err = src.linear(g, I, D, false, dequantize); err == nil {
			if lu, err = src.linear(u, I, D, false, dequantize); err == nil {
				ld, err = src.linear(d, D, I, false, dequantize)
			}
		}
		if err != nil {
			e.free()
			return nil, err
		}
		e.gate, e.up, e.down = append(e.gate, lg), append(e.up, lu), append(e.down, ld)
	}
	return e, nil
}

// sparseMLP routes each token of x ([B, L, D]) to its top-k experts. Every
// expert runs on every token and is weighted by the token's routing weight
// (zero when not chosen): exact, and simple; the cost is all experts'.
func (m *Model) sparseMLP(s *mlx.Scope, e *moeMLP, x *mlx.Array) *mlx.Array {
	if s.Err() != nil {
		return nil
	}
	logits := e.router.Apply(s, x) // [B, L, E]
	dt := logits.Dtype()
	p := s.Track(mlx.Softmax(s.Track(mlx.AsType(logits, mlx.Float32)), -1, true))
	// The k-th largest probability per token: a threshold for the mask.
	sorted := s.Track(mlx.Sort(p, -1))
	sh := p.Shape()
	kth := s.Track(mlx.Slice(sorted, []int{0, 0, e.experts - e.topK}, []int{sh[0], sh[1], e.experts - e.topK + 1}, nil))
	keep := s.Track(mlx.GreaterEqual(p, kth))
	zero := s.Track(mlx.Scalar(0, mlx.Float32))
	w := s.Track(mlx.Where(keep, p, zero))
	if e.normTopK {
		w = s.Track(mlx.Divide(w, s.Track(mlx.Sum(w, true, -1))))
	}
	w = s.Track(mlx.AsType(w, dt))
	var out *mlx.Array
	for x2 := 0; x2 < e.experts; x2++ {
		g := m.activation(s, e.gate[x2].Apply(s, x))
		y := e.down[x2].Apply(s, s.Track(mlx.Multiply(g, e.up[x2].Apply(s, x))))
		col := s.Track(mlx.Slice(w, []int{0, 0, x2}, []int{sh[0], sh[1], x2 + 1}, nil))
		y = s.Track(mlx.Multiply(y, col))
		if out == nil {
			out = y
		} else {
			out = s.Track(mlx.Add(out, y))
		}
	}
	return out
}

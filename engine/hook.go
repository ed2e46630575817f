package engine

import "github.com/mlx-genkit/genkit/mlx"

// Step says where a forward pass is: the positions it covers.
type Step struct {
	Offset  int  // position of the first token of this forward
	Len     int  // tokens per lane in this forward
	Prefill bool // true while the prompt is processed
	Index   int  // generation step: 0 for the prompt, then 1, 2, ...
	// PromptLen is the prompt's length (the last prompt position is
	// PromptLen-1), 0 when unknown.
	PromptLen int
}

// Hook sees the output of every decoder block: the post-block residual
// stream, exactly where a PyTorch forward hook on model.model.layers[L]
// acts. AfterBlock returns the hidden states that continue (h itself when
// unchanged); arrays it makes belong to s.
type Hook interface {
	AfterBlock(s *mlx.Scope, layer int, h *mlx.Array, step Step) (*mlx.Array, error)
}

// Hooks runs several hooks in order.
type Hooks []Hook

// AfterBlock implements Hook.
func (hs Hooks) AfterBlock(s *mlx.Scope, layer int, h *mlx.Array, step Step) (*mlx.Array, error) {
	var err error
	for _, x := range hs {
		if h, err = x.AfterBlock(s, layer, h, step); err != nil {
			return nil, err
		}
	}
	return h, nil
}

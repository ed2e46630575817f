package steering

import (
	"fmt"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
	"github.com/mlx-genkit/genkit/sampling"
)

// UnembedVector is W_U v: v projected onto the vocabulary through the
// model's output projection (the tied embedding when there is no lm_head).
// With finalNorm the model's final RMSNorm is applied to v first. Runs on
// the MLX thread.
func UnembedVector(m *engine.Model, v []float32, finalNorm bool) ([]float32, error) {
	if err := CheckVector(v, m.HiddenSize()); err != nil {
		return nil, err
	}
	s := mlx.NewScope()
	defer s.Close()
	x := s.Track(mlx.FromFloat32s(v, 1, len(v)))
	if m.DType != mlx.Float32 {
		x = s.Track(mlx.AsType(x, m.DType))
	}
	if finalNorm {
		x = m.FinalNorm(s, x)
	}
	y := m.LMHead().Apply(s, x)
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("logit bias: %w", err)
	}
	return y.Float32s()
}

// LogitBias is a sampling processor adding alpha(t) * W_U v to a lane's
// scores, where t is the number of tokens the lane generated so far. It
// sits among the custom processors, where transformers applies user logits
// processors.
type LogitBias struct {
	Direction []float32 // W_U v
	Alpha     float64
	Schedule  Schedule
}

// Name implements sampling.Processor.
func (p *LogitBias) Name() string { return "steering_logit_bias" }

// Process implements sampling.Processor.
func (p *LogitBias) Process(l *sampling.Lane, scores []float32) {
	a := float32(p.Schedule.Alpha(p.Alpha, len(l.Generated())))
	if a == 0 {
		return
	}
	for i := range scores {
		if i < len(p.Direction) {
			scores[i] += a * p.Direction[i]
		}
	}
}

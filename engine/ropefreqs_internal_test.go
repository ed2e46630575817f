package engine

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/mlx"
)

// TestRopeFreqsScalingRefusals: a rope_freqs tensor of the wrong length or
// shape, a factor that is infinite, NaN or negative, or rope_freqs beside
// rope.scaling metadata is refused naming the problem; head_dim/2 positive
// factors are accepted, and periods are base^(2i/d) times each factor.
func TestRopeFreqsScalingRefusals(t *testing.T) {
	cfg := func() *Config { return &Config{HeadDim: 8, RopeTheta: 10000} }
	cases := []struct {
		vals  []float32
		shape []int
		cfg   *Config
		want  string
	}{
		{[]float32{1, 2, 3, 4}, []int{4}, cfg(), ""},
		{[]float32{1, 2, 3}, []int{3}, cfg(), "want [4] (head_dim/2)"},
		{[]float32{1, 2, 3, 4}, []int{2, 2}, cfg(), "want [4] (head_dim/2)"},
		{[]float32{1, float32(math.Inf(1)), 3, 4}, []int{4}, cfg(), "rope_freqs.weight[1] = +Inf"},
		{[]float32{1, 2, float32(math.NaN()), 4}, []int{4}, cfg(), "rope_freqs.weight[2] = NaN"},
		{[]float32{1, 2, 3, -4}, []int{4}, cfg(), "rope_freqs.weight[3] = -4"},
		{[]float32{1, 2, 3, 4}, []int{4}, &Config{HeadDim: 8, RopeTheta: 10000, RopeScaling: &RopeScaling{Type: "linear", Factor: 2}},
			`together with rope.scaling.type "linear"`},
	}
	err := mlx.Do(context.Background(), func() error {
		for _, c := range cases {
			a, err := mlx.FromFloat32s(c.vals, c.shape...)
			if err != nil {
				return err
			}
			rs, err := ropeFreqsScaling(a, c.cfg)
			a.Free()
			if c.want == "" {
				if err != nil {
					t.Errorf("%v: %v", c.vals, err)
					continue
				}
				c.cfg.RopeScaling = rs
				periods, err := ropePeriods(c.cfg)
				if err != nil {
					t.Fatal(err)
				}
				for i, p := range periods {
					want := math.Pow(10000, float64(2*i)/8) * float64(c.vals[i])
					if math.Abs(float64(p)-want) > 1e-6*want {
						t.Errorf("period %d = %g, want %g", i, p, want)
					}
				}
				continue
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%v %v: %v, want an error with %q", c.vals, c.shape, err, c.want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

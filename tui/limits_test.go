package tui

import (
	"math"
	"testing"

	"github.com/mlx-genkit/genkit/steering"
)

// TestAlphaStepsBackFromAnyValue: the alpha control lands on a strength
// steering.CheckAlpha accepts from any value (NaN, 1e300, -Inf, the
// bounds), and a step down then up returns to where the first step went.
func TestAlphaStepsBackFromAnyValue(t *testing.T) {
	var alpha *control
	for _, c := range newControls(3, []string{"pirate"}, false) {
		if c.name == "alpha" {
			alpha = &c
			break
		}
	}
	if alpha == nil {
		t.Fatal("no alpha control")
	}
	for _, start := range []float64{math.NaN(), 1e300, math.Inf(-1), steering.MaxAlpha, -steering.MaxAlpha, 1.3} {
		s := DefaultSettings()
		a := start
		s.Steering.Alpha = &a
		alpha.step(&s, -1)
		down := *s.Steering.Alpha
		if err := steering.CheckAlpha(down); err != nil {
			t.Errorf("from %v, a step down gives %v: %v", start, down, err)
		}
		if err := s.Steering.Validate(); err != nil {
			t.Errorf("from %v, the plan after a step is invalid: %v", start, err)
		}
		alpha.step(&s, 1)
		alpha.step(&s, -1)
		if *s.Steering.Alpha != down {
			t.Errorf("from %v: down %v, then up and down %v", start, down, *s.Steering.Alpha)
		}
	}
	s := DefaultSettings()
	huge := 1e300
	s.Steering.Alpha = &huge
	alpha.step(&s, -1)
	if got := *s.Steering.Alpha; got >= steering.MaxAlpha || got < steering.MaxAlpha-1 {
		t.Errorf("1e300 stepped down to %v, want just under %v", got, steering.MaxAlpha)
	}
}

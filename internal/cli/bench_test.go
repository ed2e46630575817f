package cli

import (
	"strings"
	"testing"
)

// TestMedian: the reported value of repeated runs is their middle one (the
// mean of the middle two for an even count), whatever the order, and the
// runs are left in the order they ran.
func TestMedian(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{5}, 5},
		{[]float64{410.8, 545.8, 487.4}, 487.4},
		{[]float64{9, 1, 5}, 5},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		in := append([]float64(nil), c.xs...)
		if got := median(in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.xs, got, c.want)
		}
		for i := range in {
			if in[i] != c.xs[i] {
				t.Errorf("median reordered its input: %v, was %v", in, c.xs)
				break
			}
		}
	}
}

// TestBenchRepeatRefused: a bench that would measure nothing says so
// before loading anything.
func TestBenchRepeatRefused(t *testing.T) {
	for _, args := range [][]string{{"bench", "--repeat", "0"}, {"bench", "--synthetic", "qwen3-test", "--repeat", "-1"}} {
		_, err := run(t, args...)
		if err == nil || !strings.Contains(err.Error(), "--repeat") {
			t.Errorf("%v: %v, want an error naming --repeat", args, err)
		}
	}
}

package steering

import (
	"slices"
	"testing"
)

func TestSweepLayers(t *testing.T) {
	for _, c := range []struct {
		l, n int
		want []int
	}{
		{15, 30, []int{11, 13, 15, 17, 19}},
		{1, 30, []int{0, 2, 4, 6, 8}},
		{29, 30, []int{21, 23, 25, 27, 29}},
		{1, 3, []int{0, 1, 2}},
		{0, 1, []int{0}},
		{5, 0, []int{}},
	} {
		if got := SweepLayers(c.l, c.n); !slices.Equal(got, c.want) {
			t.Errorf("SweepLayers(%d, %d) = %v, want %v", c.l, c.n, got, c.want)
		}
	}
}

package steering

// The sweeps' rule, in one place. A sweep decodes the prompt once unsteered
// and several times steered, each steered lane with one setting changed:
//
//   - over alpha, the steered lanes run at once at SweepLanes' multiples of
//     alpha (0.5, 1, 1.5 and 2 times);
//   - over the steered layer, one steered run at each of SweepLayers (the
//     layer and two and four blocks either side, within the model);
//   - over any other setting (the preset, the mode, a sampling field, ...),
//     one steered run at each of SweepSteps steps of that setting from its
//     value (its own step and bounds; a list cycles), repeats dropped.

// SweepSteps are the steps from a setting's value that a sweep over it
// other than alpha or the layer takes, one steered run each.
var SweepSteps = []int{-2, -1, 0, 1, 2}

// sweepLayerOffsets are the offsets from the steered layer of a layer sweep.
var sweepLayerOffsets = []int{-4, -2, 0, 2, 4}

// SweepLayers are the layers a sweep over the steered layer steers at,
// around layer l of a model of n layers: l and two and four blocks either
// side, in order, without repeats, shifted to stay within the model
// (every layer of a model of five layers or fewer).
func SweepLayers(l, n int) []int {
	if n <= len(sweepLayerOffsets) {
		// A model this shallow: every layer.
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	lo, hi := sweepLayerOffsets[0], sweepLayerOffsets[len(sweepLayerOffsets)-1]
	// Shift the window into [0, n-1] when it would leave it.
	if l+lo < 0 {
		l = -lo
	}
	if l+hi > n-1 {
		l = n - 1 - hi
	}
	var out []int
	seen := map[int]bool{}
	for _, o := range sweepLayerOffsets {
		v := max(0, min(n-1, l+o))
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

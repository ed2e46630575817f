package tui

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mlx-genkit/genkit/quality"
	"github.com/mlx-genkit/genkit/steering"
)

// Warnings where steering is known to break the text, judged once a run
// finishes (stored with the run in the history, drawn under the lanes):
//
//   - the steered text degenerates where the base does not: a fault
//     quality.Suspect finds in it and not in the base (one character or
//     word over and over, word soup, symbol or emoji spam, no letters), or
//     a token loop (most of its 4-token phrases said before). Under
//     logit-bias this is the known failure of too strong a bias.
//   - steering had no effect: every steered lane wrote the base's tokens;
//     with the PCA method this is its known null direction.

// degenerateFaults are the faults of quality.Suspect that mean broken text
// at any length (its n-gram loop is meant for a sentence; a long text has
// its own token-loop measure here).
var degenerateFaults = []quality.Reason{quality.CharRun, quality.WordRun, quality.WordSoup, quality.SymbolSpam, quality.EmojiSpam, quality.Empty}

const (
	loopMinTokens = 16  // fewer tokens judge no loop
	loopShare     = 0.5 // a loop: at least this share of 4-grams repeat
	nullMinTokens = 8   // fewer tokens judge no null effect
)

// repeatShare is the share of a token sequence's 4-grams said before in
// it.
func repeatShare(toks []int) float64 {
	const n = 4
	if len(toks) < n+1 {
		return 0
	}
	seen := map[[n]int]bool{}
	rep := 0
	for i := 0; i+n <= len(toks); i++ {
		var k [n]int
		copy(k[:], toks[i:i+n])
		if seen[k] {
			rep++
		}
		seen[k] = true
	}
	return float64(rep) / float64(len(toks)-n+1)
}

// faults are a lane's degeneracy faults.
func faults(l Lane) []quality.Reason {
	var out []quality.Reason
	for _, r := range quality.Suspect(l.Text(), quality.Check{Ended: true}) {
		if slices.Contains(degenerateFaults, r) {
			out = append(out, r)
		}
	}
	if len(l.Tokens) >= loopMinTokens && repeatShare(l.Tokens) >= loopShare {
		out = append(out, "token-loop")
	}
	return out
}

// steeringWarnings are the warnings of a finished run with settings s.
func steeringWarnings(snap SnapshotMsg, s *Settings) []string {
	if !snap.Done || snap.Err != nil || len(snap.Lanes) < 2 || len(snap.Lanes[0].Tokens) == 0 {
		return nil
	}
	var out []string
	base := faults(snap.Lanes[0])
	scales := s.laneScales()
	alpha := s.Steering.EffectiveAlpha()
	for i := 1; i < len(snap.Lanes); i++ {
		var fresh []string
		for _, r := range faults(snap.Lanes[i]) {
			if !slices.Contains(base, r) {
				fresh = append(fresh, string(r))
			}
		}
		if len(fresh) == 0 {
			continue
		}
		a := "α " + fnum(alpha*scales[min(i, len(scales)-1)])
		if i-1 < len(snap.Labels) {
			a = snap.Labels[i-1] // a sweep over another control
		}
		if s.Steering.Mode == steering.ModeLogitBias {
			out = append(out, fmt.Sprintf("logit-bias at %s breaks the steered text (%s): lower alpha or use residual mode", a, strings.Join(fresh, ", ")))
		} else {
			out = append(out, fmt.Sprintf("the steered text degenerates at %s (%s) where the base does not: lower alpha or try another layer", a, strings.Join(fresh, ", ")))
		}
		break // the weakest lane that breaks says enough
	}
	if null(snap) && alpha != 0 {
		if s.Steering.Method == steering.MethodPCA && s.Steering.Preset != "" {
			out = append(out, "PCA gives no effect here: the steered text is the base's; try method mean, a higher alpha or another layer")
		} else {
			out = append(out, "steering had no effect: the steered text is the base's; raise alpha or try another layer")
		}
	}
	return out
}

// null reports whether every steered lane wrote exactly the base's tokens.
func null(snap SnapshotMsg) bool {
	b := snap.Lanes[0].Tokens
	if len(b) < nullMinTokens {
		return false
	}
	for _, l := range snap.Lanes[1:] {
		if !slices.Equal(l.Tokens, b) {
			return false
		}
	}
	return true
}

// warningsView draws the warnings of the run shown, w columns ("" when
// none).
func (md *Model) warningsView(w int) string {
	var ws []string
	if v := md.compare.viewing(); v != nil {
		ws = v.warnings
	} else if r := md.compare.latest(); r != nil && r.id == md.lanes.snap.RunID && md.lanes.snap.Done {
		ws = r.warnings
	}
	var lines []string
	for _, x := range ws {
		lines = append(lines, md.styles.Warn.Render(padCut("⚠ "+x, w)))
	}
	return strings.Join(lines, "\n")
}

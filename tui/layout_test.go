package tui

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/mlx-genkit/genkit/sessions"
	"github.com/mlx-genkit/genkit/steering"
)

// longRun is a finished run of lanes lanes (the base and steered ones) with
// enough text to scroll, numbered words so a test can tell which part
// shows.
func longRun(id, lanes int) SnapshotMsg { return longRunN(id, lanes, 120) }

// longRunN is longRun with n tokens a lane.
func longRunN(id, lanes, n int) SnapshotMsg {
	snap := SnapshotMsg{RunID: id, Steps: n, Elapsed: 4 * time.Second, Done: true, Finished: "length", Layer: 1,
		KL: []float64{0.1, 0.5, 0.2, 0.9, 0.4, 0.3, 0.7, 0.2, 0.1, 0.6}, Separated: map[int]float64{0: 0.1, 1: 0.8}}
	for l := 0; l < lanes; l++ {
		var ln Lane
		for i := 0; i < n; i++ {
			w := fmt.Sprintf("w%d ", i)
			if l > 0 {
				w = fmt.Sprintf("s%d ", i)
			}
			if i%40 == 39 {
				w += "\n"
			}
			ln.Pieces = append(ln.Pieces, w)
			ln.Tokens = append(ln.Tokens, i+1000*min(l, 1)+l)
			ln.Proj = append(ln.Proj, float32(i%7))
		}
		snap.Lanes = append(snap.Lanes, ln)
	}
	return snap
}

// afterRun gives md a finished run the way a real one arrives (started,
// then its final snapshot): lanes lanes, sweep when more than two.
func afterRun(md *Model, lanes int) {
	md.settings.Sweep = lanes > 2
	md.runID++
	md.compare.started(md.runID, md.settings)
	md.Update(longRun(md.runID, lanes))
}

// checkFrame fails unless the frame is exactly w x h at most: h lines, none
// wider than w.
func checkFrame(t *testing.T, what string, md *Model) {
	t.Helper()
	out := md.render()
	lines := strings.Split(out, "\n")
	if len(lines) != md.height {
		t.Fatalf("%s at %dx%d: %d lines\n%s", what, md.width, md.height, len(lines), ansi.Strip(out))
	}
	for i, l := range lines {
		if w := ansi.StringWidth(l); w > md.width {
			t.Fatalf("%s at %dx%d: line %d is %d wide: %q", what, md.width, md.height, i, w, ansi.Strip(l))
		}
	}
	plain := ansi.Strip(out)
	if o, c := strings.Count(plain, "╭"), strings.Count(plain, "╰"); o != c {
		t.Fatalf("%s at %dx%d: %d boxes opened, %d closed:\n%s", what, md.width, md.height, o, c, plain)
	}
	// The status and help rows are always the last two.
	if !md.help.ShowAll && !strings.Contains(ansi.Strip(lines[len(lines)-2]), "session test") {
		t.Fatalf("%s at %dx%d: no status row above the help:\n%s", what, md.width, md.height, plain)
	}
}

// TestFrameFitsEverySize: at every size from 80x24 up, before a run, after
// one, in a sweep, with the inspector, the full help, an error and a long
// system prompt, the frame is exactly the terminal's height and no line is
// wider than it. (After a sweep below about 160 columns the help and status
// rows used to fall off, and at 80x24 everything under the panes.)
func TestFrameFitsEverySize(t *testing.T) {
	md := newTestModel(t, 80, 24)
	md.runner = nil
	for _, w := range []int{80, 81, 90, 99, 100, 101, 110, 119, 120, 121, 140, 159, 160, 161, 190, 200, 220} {
		for _, h := range []int{24, 25, 30, 35, 40, 45, 50, 60} {
			md.Update(tea.WindowSizeMsg{Width: w, Height: h})
			md.lanes.snap, md.err, md.settings.Sweep = SnapshotMsg{}, nil, false
			checkFrame(t, "before a run", md)
			afterRun(md, 2)
			checkFrame(t, "after a run", md)
			afterRun(md, 5)
			checkFrame(t, "after a sweep", md)
			md.editors.SetValue(edSystem, strings.Repeat("You are a very long-winded pirate captain. ", 10))
			md.err = errors.New(strings.Repeat("something failed badly ", 20))
			checkFrame(t, "with an error and a system prompt", md)
			md.setFocus(focusInspector)
			md.help.ShowAll = true
			checkFrame(t, "with the inspector and the full help", md)
			md.setFocus(focusControls)
			md.help.ShowAll = false
			md.editors.SetValue(edSystem, "")
			// The session picker, its last session chosen, stays in view.
			var list []sessions.Info
			for i := range 20 {
				list = append(list, sessions.Info{Name: fmt.Sprintf("session-%02d", i), Model: "tiny-llama"})
			}
			md.picker.Open(list)
			md.picker.picked = 19
			md.setFocus(focusPicker)
			checkFrame(t, "with the session picker", md)
			if !strings.Contains(ansi.Strip(md.render()), "session-19") {
				t.Fatalf("the chosen session is cut at %dx%d:\n%s", w, h, ansi.Strip(md.render()))
			}
			md.setFocus(focusControls)
		}
	}
}

// TestGoldenViewsAfterRun: the frame after a run and after a sweep at the
// sizes a persona tuner uses (go test -run TestGoldenViewsAfterRun
// -update rewrites them).
func TestGoldenViewsAfterRun(t *testing.T) {
	for _, lanes := range []int{2, 5} {
		for _, size := range [][2]int{{80, 24}, {120, 40}, {160, 45}, {200, 50}} {
			name := fmt.Sprintf("%dx%d", size[0], size[1])
			if lanes > 2 {
				name += "-sweep"
			}
			t.Run(name, func(t *testing.T) {
				md := newTestModel(t, size[0], size[1])
				md.runner = nil
				afterRun(md, lanes)
				md.editors.SetValue(edSystem, "You are a pirate.")
				checkFrame(t, name, md)
				golden.RequireEqual(t, []byte(ansi.Strip(md.render())))
			})
		}
	}
}

// TestSidebarValuesWhole: the sidebar shows its longest values whole, on
// one line each (they used to be cut to eight characters: "warmup:1",
// "logit-bi", "shakespe"), at the narrowest sidebar.
func TestSidebarValuesWhole(t *testing.T) {
	md := newTestModel(t, sidebarMin, 40)
	md.runner = nil
	md.settings.Steering.Preset = "shakespearean"
	md.settings.Steering.Mode = steering.ModeLogitBias
	sc, err := steering.ParseSchedule("ramp:0:2:16")
	if err != nil {
		t.Fatal(err)
	}
	md.settings.Steering.Schedule = sc
	afterRun(md, 2)
	out := ansi.Strip(md.render())
	for _, v := range []string{`preset +shakespearean `, `mode +logit-bias `, `schedule +ramp:0:2:16 `} {
		if !regexp.MustCompile(v).MatchString(out) {
			t.Errorf("%q cut in the sidebar:\n%s", v, out)
		}
	}
	md.settings.Steering.Preset, md.settings.Steering.Vector = "", "/some/where/v.gguf"
	if out := ansi.Strip(md.render()); !regexp.MustCompile(`preset +\(vector file\) `).MatchString(out) {
		t.Errorf("(vector file) cut in the sidebar:\n%s", out)
	}
}

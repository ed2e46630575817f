package tui

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Issue 13, items 1, 3, 5 and 7, end to end: the real binary on the default
// model in tmux.

// resize sets the tmux window (the terminal) to w x h.
func (u *tmuxUI) resize(w, h int) {
	u.t.Helper()
	if out, err := exec.Command("tmux", "resize-window", "-t", u.name, "-x", fmt.Sprint(w), "-y", fmt.Sprint(h)).CombinedOutput(); err != nil {
		u.t.Fatalf("resize-window: %v %s", err, out)
	}
}

// screenEsc is the screen with its escape sequences (colours, reverse).
func (u *tmuxUI) screenEsc() string {
	out, _ := exec.Command("tmux", "capture-pane", "-e", "-p", "-t", u.name).Output()
	return string(out)
}

func allOf(subs ...string) func(string) bool {
	return func(s string) bool {
		for _, x := range subs {
			if !strings.Contains(s, x) {
				return false
			}
		}
		return true
	}
}

// frameHolds reports what is wrong with a screen of w x h (""; fine): the
// header on the first row, the status and help on the last two, every box
// closed (as many ╭ as ╰, no border cut to "…") and, from sidebarMin
// columns, the controls sidebar.
func frameHolds(s string, w, h int, session string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) != h {
		return fmt.Sprintf("%d lines", len(lines))
	}
	for i, l := range lines {
		if n := utf8.RuneCountInString(l); n > w {
			return fmt.Sprintf("line %d has %d cells", i, n)
		}
	}
	if !strings.HasPrefix(lines[0], "genkit") || !strings.Contains(lines[0], "theme ") {
		return "no header row"
	}
	if !strings.Contains(lines[h-2], "session "+session) {
		return "no status row"
	}
	if !strings.Contains(lines[h-1], "tab prompt") {
		return "no help row"
	}
	if o, c := strings.Count(s, "╭"), strings.Count(s, "╰"); o != c || o < 2 {
		return fmt.Sprintf("%d boxes opened, %d closed", o, c)
	}
	if strings.Contains(s, "╭…") || strings.Contains(s, "│…") {
		return "a border cut to an ellipsis"
	}
	if w >= sidebarMin && !strings.Contains(s, "controls ") {
		return "no controls sidebar"
	}
	return ""
}

var e2eSizes = [][2]int{{80, 24}, {100, 30}, {120, 30}, {120, 40}, {160, 45}, {200, 50}, {220, 60}}

// checkSizes resizes through e2eSizes and checks the frame at each.
func checkSizes(t *testing.T, u *tmuxUI, session, what string, extra func(w, h int, s string) string) {
	t.Helper()
	for _, sz := range e2eSizes {
		w, h := sz[0], sz[1]
		u.resize(w, h)
		var why string
		u.waitFor(fmt.Sprintf("%s at %dx%d", what, w, h), 10*time.Second, func(s string) bool {
			why = frameHolds(s, w, h, session)
			if why == "" && extra != nil {
				why = extra(w, h, s)
			}
			return why == ""
		})
	}
}

// TestLayoutInTmux (items 1 and 5): after a run and after a sweep the frame
// holds at every size from 80x24 to 220x60 (header, status and help rows in
// place, boxes closed, sweep titles whole, tabs at 80x24 that L switches);
// PgUp and PgDn scroll both ways and stop at the ends; the inspected token
// is marked in its pane; the system prompt and the theme's name show in the
// header and the help line takes the theme; the layer shows once; and
// before the first run the prompt says how to run it.
func TestLayoutInTmux(t *testing.T) {
	data := t.TempDir()
	exit := filepath.Join(data, "exit")
	u := startUI(t, data, exit, "--prompt", "Tell me about the ocean.", "--max-new-tokens", "64", "--session", "lay", "--theme", "dark")
	u.waitFor("the first run", 4*time.Minute, runDone(1))
	checkSizes(t, u, "lay", "after a run", nil)

	// The layer shows once (in the controls), not again under the panes.
	u.resize(120, 40)
	s := u.waitFor("the sidebar", 10*time.Second, allOf("auto (15)"))
	if n := strings.Count(s, "layer 15") + strings.Count(s, "auto (15)"); n != 1 {
		t.Fatalf("the layer shows %d times:\n%s", n, s)
	}

	// Scrolling at 80x24: PgUp shows the start, PgDn later text, each
	// bounded (one PgDn after many PgUp already moves).
	u.resize(80, 24)
	end := u.waitFor("80x24", 10*time.Second, func(s string) bool { return frameHolds(s, 80, 24, "lay") == "" })
	for range 30 {
		u.keys("PPage")
	}
	top := u.waitFor("the start of the text", 10*time.Second, allOf("The ocean is"))
	if top == end {
		t.Fatal("pgup did not scroll")
	}
	u.keys("NPage")
	u.waitFor("one pgdn to show later text", 10*time.Second, func(s string) bool { return s != top })
	for range 30 {
		u.keys("NPage")
	}
	u.waitFor("pgdn to reach the end", 10*time.Second, func(s string) bool { return s == end })

	// The inspected token is marked (a background colour) in the panes.
	marked := func(s string) int {
		n := 0
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(stripEsc(l), "│") && strings.Contains(l, "48;") {
				n++
			}
		}
		return n
	}
	if n := marked(u.screenEsc()); n != 0 {
		t.Fatalf("%d pane rows marked before inspecting", n)
	}
	u.keys("i")
	u.waitFor("the inspector", 10*time.Second, allOf("base token 0"))
	u.keys(".")
	u.waitFor("token 1", 10*time.Second, allOf("base token 1"))
	deadline := time.Now().Add(10 * time.Second)
	for marked(u.screenEsc()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the inspected token is not marked in both panes:\n%q", u.screenEsc())
		}
		time.Sleep(100 * time.Millisecond)
	}
	u.keys("Escape")
	time.Sleep(300 * time.Millisecond)

	// The system prompt shows in the header (and reruns).
	u.resize(120, 40)
	u.keys("y")
	u.waitFor("the system prompt editor", 10*time.Second, allOf("system prompt"))
	exec.Command("tmux", "send-keys", "-t", u.name, "-l", "You are a pirate.").Run()
	u.keys("Escape")
	u.waitFor("the system prompt in the header and its run", 4*time.Minute, func(s string) bool {
		return strings.Contains(strings.Split(s, "\n")[0], "system: You are a pirate.") && runDone(2)(s)
	})
	// The theme is named, and the help line changes with it.
	last := func() string { ls := strings.Split(strings.TrimRight(u.screenEsc(), "\n"), "\n"); return ls[len(ls)-1] }
	darkHelp := last()
	u.keys("t")
	u.waitFor("theme light in the header", 10*time.Second, func(s string) bool { return strings.Contains(strings.Split(s, "\n")[0], "theme light") })
	if last() == darkHelp {
		t.Fatal("the help line kept its style under another theme")
	}

	// A sweep: titles whole, frame holding; at 80x24 the lanes are tabs.
	u.keys("w")
	u.waitFor("the sweep", 4*time.Minute, runDone(3))
	checkSizes(t, u, "lay", "after a sweep", func(w, h int, s string) string {
		if w >= 160 && !allOf("α 0.5 · pirate", "α 1 · pirate", "α 1.5 · pirate", "α 2 · pirate")(s) {
			return "a sweep title cut"
		}
		if w == 80 && h == 24 && !strings.Contains(s, "(L: next)") {
			return "no lane tabs"
		}
		return ""
	})
	u.resize(80, 24)
	u.waitFor("the tabs", 10*time.Second, allOf("(L: next)", "α 0.5 · pirate"))
	u.keys("L")
	u.waitFor("the next tab", 10*time.Second, allOf("α 1 · pirate", "base"))
	u.keys("q")
	waitFile(t, exit, "0")

	// Started without a prompt to run: the UI says how to run it.
	exit2 := filepath.Join(data, "exit2")
	u2 := startUI(t, data, exit2, "--session", "lay-new", "--max-new-tokens", "8")
	u2.waitFor("the hint", 4*time.Minute, allOf("ctrl+r runs the prompt"))
	u2.keys("C-r")
	u2.waitFor("the run", 4*time.Minute, runDone(1))
	if strings.Contains(u2.screen(), "ctrl+r runs the prompt") {
		t.Fatal("the hint stayed after the run")
	}
	u2.keys("q")
	waitFile(t, exit2, "0")
}

// stripEsc drops a line's escape sequences.
func stripEsc(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b {
			for i++; i < len(s) && !(s[i] >= '@' && s[i] <= '~' && s[i] != '['); i++ {
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// TestCompareInTmux (item 3): p pins a finished run, which stays beside the
// live lanes through the next run; < and > step through the finished runs
// with their settings, back to live; W sweeps the selected control (the
// layer), the frame holding at every size.
func TestCompareInTmux(t *testing.T) {
	data := t.TempDir()
	exit := filepath.Join(data, "exit")
	u := startUI(t, data, exit, "--prompt", "Tell me about the ocean.", "--max-new-tokens", "24", "--session", "cmp")
	u.waitFor("the first run", 4*time.Minute, runDone(1))
	u.keys("p")
	u.waitFor("the pin", 10*time.Second, allOf("pinned run 1 beside the live lanes"))
	u.keys("]")
	// At 120 columns three panes take short titles, alpha first.
	u.waitFor("run 2 beside the pinned run 1", 4*time.Minute, func(s string) bool {
		return runDone(2)(s) && allOf("pin 1 · α 1 · L15", "α 1.1 · pirate")(s)
	})
	u.resize(200, 50)
	u.waitFor("the whole titles", 10*time.Second, allOf("pinned run 1 · α 1 · layer 15", "steered · pirate · α 1.1"))
	u.keys("<")
	u.waitFor("run 2 in the history", 10*time.Second, allOf("viewing run 2 (2 of 2)", "α 1.1"))
	u.keys("<")
	u.waitFor("run 1 in the history", 10*time.Second, allOf("viewing run 1 (1 of 2)", "steered · pirate · α 1 "))
	u.keys(">")
	u.keys(">")
	u.waitFor("the live run", 10*time.Second, func(s string) bool {
		return !strings.Contains(s, "viewing run") && strings.Contains(s, "back to the live run")
	})
	u.keys("p")
	u.waitFor("unpinned", 10*time.Second, func(s string) bool { return !strings.Contains(s, "pinned run 1 ·") })
	// W on the layer sweeps it: one steered lane per layer around the auto
	// layer 15 (steering.SweepLayers), each titled by its layer.
	u.keys("j", "W")
	u.waitFor("the layer sweep", 4*time.Minute, func(s string) bool {
		return runDone(3)(s) && allOf("sweep: layer", "layer 11", "layer 13", "layer 15", "layer 17", "layer 19")(s)
	})
	checkSizes(t, u, "cmp", "after a layer sweep", nil)
	u.resize(200, 50)
	u.keys("W")
	u.waitFor("the sweep off", 4*time.Minute, func(s string) bool { return runDone(4)(s) && !strings.Contains(s, "sweep: layer") })
	u.keys("q")
	waitFile(t, exit, "0")
}

// TestWarningsInTmux (item 7): logit-bias at alpha 1 loops the steered text
// on the default model and the UI warns (residual at alpha 1 does not);
// PCA at a negligible alpha leaves the text as the base's and the UI warns
// (mean at 0.3 changes it, no warning). The steering run is one whose text
// changes on every platform: at alpha 0.02 the H200's float16 GGUF path
// (session 11) kept the base's 32 tokens, where this CPU's diverged at token
// 10; at 0.3 this CPU's diverges at token 2.
func TestWarningsInTmux(t *testing.T) {
	data := t.TempDir()
	exit := filepath.Join(data, "exit")
	u := startUI(t, data, exit, "--prompt", "Tell me about the ocean.", "--max-new-tokens", "48", "--session", "warn")
	s := u.waitFor("the first run", 4*time.Minute, runDone(1))
	if strings.Contains(s, "⚠") {
		t.Fatalf("a warning on a sound run:\n%s", s)
	}
	u.keys("j", "j", "j") // alpha, layer, preset, mode
	u.keys("l")
	u.waitFor("the logit-bias warning", 4*time.Minute, func(s string) bool {
		return runDone(2)(s) && strings.Contains(s, "⚠ logit-bias at α 1 breaks the steered text")
	})
	u.keys("q")
	waitFile(t, exit, "0")

	exit2 := filepath.Join(data, "exit2")
	u2 := startUI(t, data, exit2, "--prompt", "Tell me about the ocean.", "--max-new-tokens", "32", "--alpha", "0.3", "--session", "warn2")
	s = u2.waitFor("the first run", 4*time.Minute, runDone(1))
	if strings.Contains(s, "⚠") {
		t.Fatalf("a warning on a run that steers:\n%s", s)
	}
	u2.keys("j", "j", "j", "j", "j", "j") // ... scope, schedule, method
	u2.keys("l")
	// Whether PCA at a small alpha moves a token depends on the platform's
	// rounding (at 0.02 on an H100 the float16 GGUF path diverged at token
	// 17), so the null case is made certain: alpha typed as 1e-6.
	u2.keys("k", "k", "k", "k", "k", "k", "=", "C-u")
	u2.typeLiteral("0.000001")
	u2.keys("Enter")
	u2.waitFor("the PCA warning", 4*time.Minute, func(s string) bool {
		return (runDone(2)(s) || runDone(3)(s)) && strings.Contains(s, "⚠ PCA gives no effect here") && strings.Contains(s, "α 1e-06")
	})
	u2.keys("q")
	waitFile(t, exit2, "0")
}

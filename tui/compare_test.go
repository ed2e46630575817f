package tui

import (
	"fmt"
	"image/color"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/steering"
	"github.com/mlx-genkit/genkit/themes"
)

// TestScrollIsBounded: PgUp shows earlier text and stops at the start, PgDn
// and the wheel show later text and stop at the end, and after scrolling
// far past the start one PgDn already moves the text (the scroll used to
// grow without bound, so the way back took as many presses).
func TestScrollIsBounded(t *testing.T) {
	md := newTestModel(t, 120, 24)
	md.runner = nil
	afterRun(md, 2)
	screen := func() string { return ansi.Strip(md.render()) }
	if !strings.Contains(screen(), "w119") || strings.Contains(screen(), "w0 ") {
		t.Fatalf("a finished run does not show its end:\n%s", screen())
	}
	for range 100 {
		press(md, tea.KeyPressMsg{Code: tea.KeyPgUp})
	}
	top := screen()
	if !strings.Contains(top, "w0 w1 ") || strings.Contains(top, "w119") {
		t.Fatalf("pgup did not reach the start:\n%s", top)
	}
	most := md.lanes.scroll
	press(md, tea.KeyPressMsg{Code: tea.KeyPgDown})
	if md.lanes.scroll >= most || screen() == top || strings.Contains(screen(), "w0 w1 ") {
		t.Fatalf("one pgdn after scrolling past the start did not show later text (scroll %d of %d)", md.lanes.scroll, most)
	}
	for range 100 {
		md.Update(tea.MouseWheelMsg{Button: tea.MouseWheelDown})
	}
	if md.lanes.scroll != 0 || !strings.Contains(screen(), "w119") {
		t.Fatalf("the wheel did not reach the end: scroll %d", md.lanes.scroll)
	}
	md.Update(tea.MouseWheelMsg{Button: tea.MouseWheelUp})
	if md.lanes.scroll != 3 {
		t.Fatalf("wheel up: scroll %d", md.lanes.scroll)
	}
	// No text: nothing to scroll.
	mt := newTestModel(t, 120, 40)
	mt.Update(tea.MouseWheelMsg{Button: tea.MouseWheelUp})
	if mt.lanes.scroll != 0 {
		t.Fatalf("scrolled %d with no text", mt.lanes.scroll)
	}
}

// TestInspectedTokenMarked: the inspected token is marked in its pane, and
// the pane scrolls to keep it in view.
func TestInspectedTokenMarked(t *testing.T) {
	md := newTestModel(t, 120, 40)
	md.runner = nil
	afterRun(md, 2)
	snap := md.lanes.snap
	for i := range snap.Lanes {
		for j := range snap.Lanes[i].Pieces {
			snap.Lanes[i].Top = append(snap.Lanes[i].Top, []Alt{{Token: snap.Lanes[i].Pieces[j], Prob: 0.5}})
		}
	}
	md.Update(snap)
	press(md, text('i'))
	for range 3 {
		press(md, text('.'))
	}
	out := md.render()
	if !strings.Contains(out, md.styles.Mark.Render("w3 ")) || !strings.Contains(out, md.styles.Mark.Render("s3 ")) {
		t.Fatalf("token 3 is not marked in both panes:\n%q", out)
	}
	if !strings.Contains(ansi.Strip(out), "w0 w1 w2 w3") {
		t.Fatal("the pane did not scroll to the inspected token")
	}
}

// TestHeaderShowsThemeSystemAndLayerOnce: the header names the theme and
// shows the system prompt; the layer is shown once (the controls), not
// again under the panes; the help line takes the theme's styles.
func TestHeaderShowsThemeSystemAndLayerOnce(t *testing.T) {
	md := newTestModel(t, 120, 40)
	md.runner = nil
	afterRun(md, 2)
	md.editors.SetValue(edSystem, "You are a pirate.\nAlways.")
	out := ansi.Strip(md.render())
	head := strings.Split(out, "\n")[0]
	if !strings.Contains(head, "theme dark") || !strings.Contains(head, "system: You are a pirate. Always.") {
		t.Fatalf("header: %q", head)
	}
	if n := strings.Count(out, "layer 1") + strings.Count(out, "auto (1)"); n != 1 {
		t.Fatalf("the layer shows %d times:\n%s", n, out)
	}
	press(md, text('t'))
	if head := strings.Split(ansi.Strip(md.render()), "\n")[0]; !strings.Contains(head, "theme light") {
		t.Fatalf("header after t: %q", head)
	}
	if !strings.Contains(md.render(), md.styles.HelpKey.Render("q")) {
		t.Fatal("the help line does not use the theme's key style")
	}
}

// TestInitialPromptHint: before the first run the status and the base pane
// say ctrl+r runs the prompt.
func TestInitialPromptHint(t *testing.T) {
	md := newTestModel(t, 80, 24)
	out := ansi.Strip(md.render())
	if !strings.Contains(out, "ctrl+r runs the prompt") {
		t.Fatalf("no hint before the first run:\n%s", out)
	}
	afterRun(md, 2)
	if strings.Contains(ansi.Strip(md.render()), "ctrl+r runs the prompt") {
		t.Fatal("the hint stays after a run")
	}
}

// TestPinAndHistory: p pins a finished run beside the live lanes (it stays
// through new runs); < and > step through the finished runs, their
// settings in the header and status, > past the newest back to live.
func TestPinAndHistory(t *testing.T) {
	md := newTestModel(t, 220, 50)
	md.runner = nil
	afterRun(md, 2) // run 1 at alpha 1
	press(md, text('p'))
	if md.compare.pinned == nil || md.compare.pinned.id != 1 {
		t.Fatalf("p pinned nothing: %q", md.status)
	}
	press(md, text(']'))
	a := 1.1
	md.settings.Steering.Alpha = &a
	snap := longRun(0, 2)
	for i := range snap.Lanes[1].Pieces {
		snap.Lanes[1].Pieces[i] = "t" + snap.Lanes[1].Pieces[i][1:]
	}
	md.runID++
	md.compare.started(md.runID, md.settings)
	snap.RunID = md.runID
	md.Update(snap) // run 2 at alpha 1.1
	out := ansi.Strip(md.render())
	if !strings.Contains(out, "pinned run 1 · α 1 · layer 1") || !strings.Contains(out, "s119") || !strings.Contains(out, "t119") {
		t.Fatalf("the pinned run is not beside the live lanes:\n%s", out)
	}
	press(md, text('<'))
	out = ansi.Strip(md.render())
	if v := md.compare.viewing(); v == nil || v.id != 2 || !strings.Contains(out, "viewing run 2 (2 of 2)") {
		t.Fatalf("< did not show the newest finished run:\n%s", out)
	}
	press(md, text('<'))
	out = ansi.Strip(md.render())
	if !strings.Contains(out, "viewing run 1 (1 of 2)") || !strings.Contains(md.status, `"Tell me about the ocean." · α 1 ·`) || !strings.Contains(out, "steered · pirate · α 1 ") {
		t.Fatalf("< did not step back to run 1 with its settings (status %q):\n%s", md.status, out)
	}
	press(md, text('>'))
	press(md, text('>'))
	if md.compare.viewing() != nil || strings.Contains(ansi.Strip(md.render()), "viewing run") {
		t.Fatal("> past the newest did not go back to the live run")
	}
	press(md, text('p'))
	if md.compare.pinned != nil || strings.Contains(ansi.Strip(md.render()), "pinned run") {
		t.Fatal("p did not unpin")
	}
	// Nothing finished: nothing to pin.
	mt := newTestModel(t, 120, 40)
	press(mt, text('p'))
	if mt.compare.pinned != nil || !strings.Contains(mt.status, "nothing to pin") {
		t.Fatalf("pinned with no run: %q", mt.status)
	}
}

// TestLaneTabsInNarrowSweep: at 80x24 a sweep's lanes are tabs; L shows the
// next one beside the base.
func TestLaneTabsInNarrowSweep(t *testing.T) {
	md := newTestModel(t, 80, 24)
	md.runner = nil
	afterRun(md, 5)
	out := ansi.Strip(md.render())
	if !strings.Contains(out, "α 0.5 │ α 1 │ α 1.5 │ α 2") || !strings.Contains(out, "α 0.5 · pirate") || strings.Contains(out, "α 1 · pirate") {
		t.Fatalf("no lane tabs:\n%s", out)
	}
	press(md, text('L'))
	if out := ansi.Strip(md.render()); !strings.Contains(out, "α 1 · pirate") || !strings.Contains(out, "base") {
		t.Fatalf("L did not show the next lane beside the base:\n%s", out)
	}
}

// TestWarnings: each warning shows where steering broke the text, and not
// where it did not.
func TestWarnings(t *testing.T) {
	loop := func(snap SnapshotMsg, lane int) {
		l := &snap.Lanes[lane]
		for i := range l.Tokens {
			l.Tokens[i] = 7 + i%2 + 10*lane
			l.Pieces[i] = []string{"arr ", "matey "}[i%2]
		}
	}
	cases := []struct {
		name string
		set  func(*Settings)
		snap func() SnapshotMsg
		want string // "" wants no warning
	}{
		{"logit-bias degenerates", func(s *Settings) { s.Steering.Mode = steering.ModeLogitBias },
			func() SnapshotMsg { s := longRun(1, 2); loop(s, 1); return s }, "logit-bias at α 1 breaks the steered text (token-loop)"},
		{"logit-bias fine", func(s *Settings) { s.Steering.Mode = steering.ModeLogitBias },
			func() SnapshotMsg { return longRun(1, 2) }, ""},
		{"residual degenerates", func(s *Settings) {},
			func() SnapshotMsg { s := longRun(1, 2); loop(s, 1); return s }, "the steered text degenerates at α 1 (token-loop)"},
		{"both lanes loop alike", func(s *Settings) { s.Steering.Mode = steering.ModeLogitBias },
			func() SnapshotMsg { s := longRun(1, 2); loop(s, 0); loop(s, 1); return s }, ""},
		{"PCA null effect", func(s *Settings) { s.Steering.Method = steering.MethodPCA },
			func() SnapshotMsg { s := longRun(1, 2); s.Lanes[1] = s.Lanes[0]; return s }, "PCA gives no effect here"},
		{"PCA with an effect", func(s *Settings) { s.Steering.Method = steering.MethodPCA },
			func() SnapshotMsg { return longRun(1, 2) }, ""},
		{"mean null effect", func(s *Settings) {},
			func() SnapshotMsg { s := longRun(1, 2); s.Lanes[1] = s.Lanes[0]; return s }, "steering had no effect"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			md := newTestModel(t, 120, 40)
			md.runner = nil
			c.set(&md.settings)
			md.runID = 1
			md.compare.started(1, md.settings)
			md.Update(c.snap())
			out := ansi.Strip(md.render())
			if c.want == "" {
				if strings.Contains(out, "⚠") {
					t.Fatalf("a warning where steering did not break the text:\n%s", out)
				}
				return
			}
			if !strings.Contains(out, "⚠ "+c.want) {
				t.Fatalf("no warning %q:\n%s", c.want, out)
			}
		})
	}
}

// TestSweepOverAControl: W on the layer sweeps the layer (one steered lane
// per layer of steering.SweepLayers, titled by it), W on another control
// sweeps its steps, W again stops; the runs are real (the tiny model).
func TestSweepOverAControl(t *testing.T) {
	t.Setenv("GENKIT_DATA_DIR", t.TempDir())
	m := loadDefault(t)
	md := New(Options{SessionName: "test", Settings: DefaultSettings(), Theme: "dark"})
	md.Update(loaded(m, nil))
	md.Update(tea.WindowSizeMsg{Width: 160, Height: 45})
	msgs := make(chan tea.Msg, 4096)
	md.runner = NewRunner(md.m, nil, func(msg tea.Msg) { msgs <- msg })
	defer md.runner.Stop()
	md.settings.Gen.MaxNewTokens = sampling.Ptr(6)
	run := func() SnapshotMsg {
		t.Helper()
		md.startRun()
		deadline := time.After(2 * time.Minute)
		for {
			select {
			case msg := <-msgs:
				md.Update(msg)
				if s, ok := msg.(SnapshotMsg); ok && s.Done && s.RunID == md.runID {
					if s.Err != nil {
						t.Fatal(s.Err)
					}
					return s
				}
			case <-deadline:
				t.Fatal("the sweep did not finish")
			}
		}
	}
	for md.controls.Selected().name != "layer" {
		press(md, tea.KeyPressMsg{Code: tea.KeyDown})
	}
	press(md, text('W'))
	if !md.settings.Sweep || md.compare.over != "layer" {
		t.Fatalf("W on the layer: sweep %v over %q", md.settings.Sweep, md.compare.over)
	}
	snap := run()
	layers := steering.SweepLayers(snap.Layer, md.m.NumLayers())
	if len(snap.Labels) != len(layers) || len(snap.Lanes) != len(layers)+1 || snap.Labels[0] != fmt.Sprintf("layer %d", layers[0]) {
		t.Fatalf("layer sweep: labels %v, %d lanes (layers %v)", snap.Labels, len(snap.Lanes), layers)
	}
	for i, l := range snap.Lanes {
		if len(l.Tokens) == 0 {
			t.Fatalf("lane %d has no tokens", i)
		}
	}
	out := ansi.Strip(md.render())
	if !strings.Contains(out, fmt.Sprintf("layer %d · pirate · α 1", layers[0])) || !strings.Contains(strings.Split(out, "\n")[0], "sweep: layer") {
		t.Fatalf("the layer sweep's titles:\n%s", out)
	}
	// Its lane at the current layer is what a normal run steers.
	sweepAt := snap.Lanes[1+slices.Index(layers, snap.Layer)].Tokens
	press(md, text('W'))
	if pair := run(); !slices.Equal(pair.Lanes[1].Tokens, sweepAt) || !slices.Equal(pair.Lanes[0].Tokens, snap.Lanes[0].Tokens) {
		t.Fatalf("the sweep's lane at layer %d %v, a normal run's %v", snap.Layer, sweepAt, pair.Lanes[1].Tokens)
	}
	for md.controls.Selected().name != "repetition_penalty" {
		press(md, tea.KeyPressMsg{Code: tea.KeyDown})
	}
	press(md, text('W'))
	snap = run()
	want := []string{"repetition_penalty 0.9", "repetition_penalty 0.95", "repetition_penalty 1", "repetition_penalty 1.05", "repetition_penalty 1.1"}
	if md.compare.over != "repetition_penalty" || strings.Join(snap.Labels, ",") != strings.Join(want, ",") || len(snap.Lanes) != 6 || len(snap.Lanes[5].Tokens) == 0 {
		t.Fatalf("repetition_penalty sweep: labels %v, %d lanes", snap.Labels, len(snap.Lanes))
	}
	if !strings.Contains(ansi.Strip(md.render()), "repetition_penalty 1.1") {
		t.Fatalf("the sweep's titles:\n%s", ansi.Strip(md.render()))
	}
	press(md, text('W'))
	if md.settings.Sweep {
		t.Fatal("W again did not stop the sweep")
	}
}

// TestEveryColourFromTheTheme: under each theme, every colour the frame
// draws (text and background, the help line and the editor included) is
// one of the theme's palette.
func TestEveryColourFromTheTheme(t *testing.T) {
	md := newTestModel(t, 160, 45)
	md.runner = nil
	afterRun(md, 2)
	md.editors.SetValue(edSystem, "You are a pirate.")
	esc := regexp.MustCompile(`[34]8;2;(\d+);(\d+);(\d+)`)
	for range themes.All {
		p := md.styles.Palette
		allowed := map[string]bool{}
		v := reflect.ValueOf(p)
		for i := 0; i < v.NumField(); i++ {
			if c, ok := v.Field(i).Interface().(color.Color); ok && c != nil {
				r, g, b, _ := c.RGBA()
				allowed[fmt.Sprintf("%d;%d;%d", r>>8, g>>8, b>>8)] = true
			}
		}
		for _, focus := range []focus{focusControls, focusPrompt} {
			md.setFocus(focus)
			out := md.render()
			if !strings.Contains(out, "8;2;") {
				t.Fatalf("%s: no colours drawn", p.Name)
			}
			for _, m := range esc.FindAllStringSubmatch(out, -1) {
				if c := m[1] + ";" + m[2] + ";" + m[3]; !allowed[c] {
					t.Fatalf("%s: colour %s is not the theme's (in %q)", p.Name, c, m[0])
				}
			}
			if m := regexp.MustCompile(`[34]8;5;\d+`).FindString(out); m != "" {
				t.Fatalf("%s: an indexed colour %q is not the theme's", p.Name, m)
			}
			if !strings.Contains(out, md.styles.HelpKey.Render("ctrl+r")) {
				t.Fatalf("%s: the help line is not drawn in the theme's styles", p.Name)
			}
		}
		md.setFocus(focusControls)
		press(md, text('t'))
	}
}

// TestScrolledViewStaysWhileStreaming: scrolled up during a run, the lines
// in view stay put as text streams in; at the end (not scrolled) the view
// follows the new text.
func TestScrolledViewStaysWhileStreaming(t *testing.T) {
	md := newTestModel(t, 120, 24)
	md.runner = nil
	md.runID = 1
	md.compare.started(1, md.settings)
	part := longRunN(1, 2, 300)
	part.Done = false
	md.Update(part)
	press(md, tea.KeyPressMsg{Code: tea.KeyPgUp})
	before := ansi.Strip(md.render())
	if strings.Contains(before, "w299") {
		t.Fatal("pgup did not scroll")
	}
	md.Update(longRunN(1, 2, 400)) // 100 more tokens, and done
	after := ansi.Strip(md.render())
	pane := func(s string) string { return strings.Join(strings.Split(s, "\n")[8:20], "\n") } // the text rows
	if pane(before) != pane(after) {
		t.Fatalf("the scrolled view moved as text streamed in:\n%s\n---\n%s", pane(before), pane(after))
	}
	for range 10 {
		press(md, tea.KeyPressMsg{Code: tea.KeyPgDown})
	}
	if !strings.Contains(ansi.Strip(md.render()), "w399") {
		t.Fatal("pgdn did not reach the end")
	}
}

// TestSweepVariants: the values a sweep over a control takes (the rule in
// steering: SweepLayers, SweepSteps), repeats dropped, the current value's
// index known.
func TestSweepVariants(t *testing.T) {
	list := newControls(30, []string{"cheerful", "formal", "pirate", "shakespearean", "terse"}, false)
	get := func(name string) *control {
		for i := range list {
			if list[i].name == name {
				return &list[i]
			}
		}
		t.Fatalf("no control %s", name)
		return nil
	}
	s := DefaultSettings()
	s.Sweep = true
	for _, c := range []struct {
		control string
		want    []string
		cur     int
	}{
		{"layer", []string{"layer 11", "layer 13", "layer 15", "layer 17", "layer 19"}, 2},
		{"preset", []string{"preset cheerful", "preset formal", "preset pirate", "preset shakespearean", "preset terse"}, 2},
		{"mode", []string{"mode residual", "mode logit-bias"}, 0},
		{"do_sample", []string{"do_sample false", "do_sample true"}, 0},
		{"top_k", []string{"top_k 40", "top_k 45", "top_k 50", "top_k 55", "top_k 60"}, 2},
	} {
		vs, labels, cur := sweepVariants(s, get(c.control), 30)
		if strings.Join(labels, ",") != strings.Join(c.want, ",") || cur != c.cur || len(vs) != len(labels) {
			t.Errorf("%s: labels %v cur %d, want %v cur %d", c.control, labels, cur, c.want, c.cur)
		}
		for _, v := range vs {
			if v.Sweep {
				t.Errorf("%s: a variant runs as a sweep", c.control)
			}
		}
	}
	if s.Steering.Layer != nil || s.Steering.Preset != "pirate" {
		t.Fatal("sweepVariants changed the settings it sweeps from")
	}
}

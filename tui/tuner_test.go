package tui

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/sessions"
	"github.com/mlx-genkit/genkit/steering"
)

// typeText types s into the focused context, key by key.
func typeText(md *Model, s string) {
	for _, r := range s {
		press(md, text(r))
	}
}

// clearEntry empties the entry (ctrl+u deletes to the line's start).
func clearEntry(md *Model) {
	press(md, tea.KeyPressMsg{Code: 'u', Mod: tea.ModCtrl})
}

// selectControl moves the selection to the control name.
func selectControl(t *testing.T, md *Model, name string) {
	t.Helper()
	i := md.controls.index(name)
	if i < 0 {
		t.Fatalf("no control %s", name)
	}
	md.controls.selected = i
}

// enterValue types v as control name's value and presses enter.
func enterValue(t *testing.T, md *Model, name, v string) tea.Cmd {
	t.Helper()
	selectControl(t, md, name)
	press(md, text('='))
	if md.focus != focusEntry || !md.tuner.entry.open || md.tuner.entry.control != name {
		t.Fatalf("= did not open the entry on %s (focus %v)", name, md.focus)
	}
	clearEntry(md)
	typeText(md, v)
	return press(md, tea.KeyPressMsg{Code: tea.KeyEnter})
}

// TestTypedValues: = (or enter) opens an entry on the selected control
// holding its value; enter applies a typed value and reruns (after the
// debounce); a bad value is refused with a message naming the control and
// the valid range (from the value's home: steering.CheckAlpha,
// steering.ResolveLayer, sampling's Validate), the entry kept open and the
// settings unchanged; esc cancels.
func TestTypedValues(t *testing.T) {
	md := newTestModel(t, 120, 40)
	md.runner = nil
	selectControl(t, md, "alpha")
	press(md, tea.KeyPressMsg{Code: tea.KeyEnter})
	if md.focus != focusEntry || md.tuner.entry.input.Value() != "auto" {
		t.Fatalf("enter on alpha: focus %v, entry %q", md.focus, md.tuner.entry.input.Value())
	}
	if h := helpLine(md); !strings.Contains(h, "enter apply") || !strings.Contains(h, "esc cancel") {
		t.Fatalf("entry help: %q", h)
	}
	press(md, tea.KeyPressMsg{Code: tea.KeyEscape})
	if cmd := enterValue(t, md, "alpha", "3.25"); cmd == nil || md.focus != focusControls || !md.dirty {
		t.Fatal("a typed alpha did not schedule a rerun")
	}
	if a := md.settings.Steering.Alpha; a == nil || *a != 3.25 {
		t.Fatalf("alpha %v, want 3.25", a)
	}
	if !strings.Contains(md.status, "alpha") || !strings.Contains(md.status, "3.25") {
		t.Fatalf("status %q", md.status)
	}
	bad := []struct{ control, value, want string }{
		{"alpha", "1e9", "outside [-10000, 10000]"},
		{"alpha", "NaN", "not a finite number"},
		{"alpha", "lots", "not a number"},
		{"layer", "99", "outside the model's"},
		{"top_p", "2", "top_p must be in (0, 1]"},
		{"temperature", "0", "temperature must be > 0"},
		{"top_k", "-1", "top_k must be >= 0"},
		{"top_k", "1.5", "whole number"},
		{"max_new_tokens", "-4", "max_new_tokens must be >= 0"},
		{"seed", "-1", "seed \"-1\": want a whole number in [0, "},
		{"schedule", "ramp:x", "schedule"},
	}
	for _, b := range bad {
		before := cloneSettings(md.settings)
		enterValue(t, md, b.control, b.value)
		e := md.tuner.entry
		if md.focus != focusEntry || !strings.Contains(e.err, b.control) || !strings.Contains(e.err, b.want) {
			t.Errorf("%s = %s: focus %v, error %q (want it to name %s and %q)", b.control, b.value, md.focus, e.err, b.control, b.want)
		}
		if !sameSettings(before, md.settings) {
			t.Errorf("%s = %s was refused but the settings changed", b.control, b.value)
		}
		if out := ansi.Strip(md.render()); !strings.Contains(out, b.control) {
			t.Errorf("%s = %s: the refusal does not show:\n%s", b.control, b.value, out)
		}
		press(md, tea.KeyPressMsg{Code: tea.KeyEscape})
		if md.focus != focusControls || md.tuner.entry.open {
			t.Fatal("esc did not close the entry")
		}
	}
	good := map[string]string{"layer": "-1", "top_k": "7", "top_p": "0.5", "temperature": "0.7", "seed": "1234", "max_new_tokens": "20", "schedule": "ramp:0:4:16", "frequency_penalty": "-0.5"}
	for c, v := range good {
		enterValue(t, md, c, v)
		if md.focus != focusControls || md.tuner.entry.err != "" {
			t.Fatalf("%s = %s refused: %s", c, v, md.tuner.entry.err)
		}
	}
	g := md.settings.Gen
	if *md.settings.Steering.Layer != -1 || *g.TopK != 7 || *g.TopP != 0.5 || *g.Temperature != 0.7 || *g.Seed != 1234 || *g.MaxNewTokens != 20 ||
		md.settings.Steering.Schedule.String() != "ramp:0:4:16" || *g.FrequencyPenalty != -0.5 {
		t.Fatalf("typed values not applied: %+v %+v", md.settings.Steering, g)
	}
	enterValue(t, md, "alpha", "auto")
	if md.settings.Steering.Alpha != nil {
		t.Fatal("alpha auto did not unset alpha")
	}
	// A control without typed values says how to change it.
	selectControl(t, md, "mode")
	press(md, text('='))
	if md.focus != focusControls || !strings.Contains(md.status, "mode takes no typed value") {
		t.Fatalf("= on mode: focus %v, status %q", md.focus, md.status)
	}
}

// TestResetToDefaults: r resets the selected control to its default
// (DefaultSettings: the default plan's value, or a generation field unset
// so the model's own applies), R every control; the prompt stays.
func TestResetToDefaults(t *testing.T) {
	md := newTestModel(t, 120, 40)
	md.runner = nil
	def := DefaultSettings()
	enterValue(t, md, "alpha", "4")
	enterValue(t, md, "temperature", "0.3")
	enterValue(t, md, "seed", "9")
	md.settings.Steering.Mode = steering.ModeLogitBias
	selectControl(t, md, "alpha")
	if cmd := press(md, text('r')); md.settings.Steering.Alpha != nil || md.settings.Gen.Temperature == nil {
		t.Fatalf("r on alpha: alpha %v, temperature %v (%v)", md.settings.Steering.Alpha, md.settings.Gen.Temperature, cmd)
	}
	if !strings.Contains(md.status, "reset alpha 4 →") {
		t.Fatalf("status %q", md.status)
	}
	md.editors.SetValue(edPrompt, "my prompt")
	md.settings.Prompt = "my prompt"
	press(md, text('R'))
	s := md.settings
	if s.Gen.Temperature != nil || *s.Gen.Seed != *def.Gen.Seed || s.Steering.Mode != def.Steering.Mode || s.Steering.Preset != steering.DefaultPreset || s.Prompt != "my prompt" {
		t.Fatalf("R: %+v", s)
	}
	if !md.dirty {
		t.Fatal("R did not schedule a rerun")
	}
}

// TestUndoRedo: u undoes setting changes (a burst of one control's steps
// is one step), U redoes, a new change drops the redo history, and the
// history is bounded.
func TestUndoRedo(t *testing.T) {
	md := newTestModel(t, 120, 40)
	md.runner = nil
	start := md.settings.Steering.EffectiveAlpha()
	for i := 0; i < 3; i++ {
		press(md, text(']'))
	}
	enterValue(t, md, "alpha", "5")
	enterValue(t, md, "top_k", "9")
	press(md, text('u'))
	if md.settings.Gen.TopK != nil || *md.settings.Steering.Alpha != 5 {
		t.Fatalf("undo top_k: %v, alpha %v", md.settings.Gen.TopK, *md.settings.Steering.Alpha)
	}
	if !strings.Contains(md.status, "undo: top_k 9 →") || !md.dirty {
		t.Fatalf("undo status %q, dirty %v", md.status, md.dirty)
	}
	press(md, text('u'))
	if got := *md.settings.Steering.Alpha; math.Abs(got-(start+0.3)) > 1e-9 {
		t.Fatalf("undo alpha 5: %v, want %v", got, start+0.3)
	}
	press(md, text('u')) // the three ] presses were one burst
	if md.settings.Steering.Alpha != nil {
		t.Fatalf("undo the burst: alpha %v, want auto", *md.settings.Steering.Alpha)
	}
	press(md, text('u'))
	if md.status != "nothing to undo" {
		t.Fatalf("status %q", md.status)
	}
	press(md, text('U'))
	press(md, text('U'))
	if *md.settings.Steering.Alpha != 5 {
		t.Fatalf("redo twice: alpha %v, want 5", *md.settings.Steering.Alpha)
	}
	enterValue(t, md, "alpha", "6")
	press(md, text('U'))
	if md.status != "nothing to redo" || *md.settings.Steering.Alpha != 6 {
		t.Fatalf("a new change kept the redo history: %q, alpha %v", md.status, *md.settings.Steering.Alpha)
	}
	for i := 0; i < historyLimit+50; i++ {
		enterValue(t, md, "seed", fmt.Sprint(i))
		enterValue(t, md, "top_k", fmt.Sprint(i))
	}
	if n := len(md.tuner.undo); n != historyLimit {
		t.Fatalf("%d undo steps kept, want %d", n, historyLimit)
	}
}

// TestSaveAsAndRename: S saves a copy under a typed name (the session goes
// on under it), a name saved already is refused until enter again
// confirms (the replaced one kept), N renames the session's file.
func TestSaveAsAndRename(t *testing.T) {
	md := newTestModel(t, 120, 40)
	md.runner = nil
	md.Update(settled(0))
	dir, _ := sessions.Dir()
	name := func(key rune, n string) tea.Cmd {
		press(md, text(key))
		if md.focus != focusEntry || md.tuner.entry.input.Value() != md.sessionName() {
			t.Fatalf("%c: entry %q (focus %v)", key, md.tuner.entry.input.Value(), md.focus)
		}
		clearEntry(md)
		typeText(md, n)
		return press(md, tea.KeyPressMsg{Code: tea.KeyEnter})
	}
	md.Update(name('S', "mine")())
	if md.sessionName() != "mine" || !strings.Contains(md.status, "saved as mine") {
		t.Fatalf("save as: session %s, status %q", md.sessionName(), md.status)
	}
	s, err := sessions.Load("mine")
	if err != nil || s.Steered == "" || s.Name != "mine" {
		t.Fatalf("saved: %+v %v", s, err)
	}
	other := DefaultSettings().ToSession("other", "tiny-llama")
	other.Prompt = "someone else's"
	if err := sessions.Save(other); err != nil {
		t.Fatal(err)
	}
	md.Update(name('S', "other")())
	if md.focus != focusEntry || !strings.Contains(md.tuner.entry.err, "other is saved already") {
		t.Fatalf("save as over a saved name: focus %v, %q", md.focus, md.tuner.entry.err)
	}
	if s, _ := sessions.Load("other"); s.Prompt != "someone else's" {
		t.Fatal("the refused save-as replaced the saved session")
	}
	md.Update(press(md, tea.KeyPressMsg{Code: tea.KeyEnter})())
	if s, _ := sessions.Load("other"); s.Prompt == "someone else's" || md.sessionName() != "other" {
		t.Fatalf("confirmed save-as: prompt %q, session %s", s.Prompt, md.sessionName())
	}
	if kept, _ := filepath.Glob(filepath.Join(dir, ".replaced", "other.*.json")); len(kept) != 1 {
		t.Fatalf("the replaced session was not kept: %v", kept)
	}
	// A bad name is refused in the entry.
	if cmd := name('S', "../x"); cmd != nil || !strings.Contains(md.tuner.entry.err, "session name") {
		t.Fatalf("bad name: %q", md.tuner.entry.err)
	}
	press(md, tea.KeyPressMsg{Code: tea.KeyEscape})
	md.Update(name('N', "renamed")())
	if md.sessionName() != "renamed" || !strings.Contains(md.status, "renamed session other to renamed") {
		t.Fatalf("rename: session %s, status %q", md.sessionName(), md.status)
	}
	if _, err := os.Stat(filepath.Join(dir, "other.json")); !os.IsNotExist(err) {
		t.Fatalf("other.json still there after the rename: %v", err)
	}
	if _, err := sessions.Load("renamed"); err != nil {
		t.Fatal(err)
	}
}

// runCmds runs a command and the commands of a batch, once each (no
// ticks follow), and returns their messages.
func runCmds(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	msg := cmd()
	if b, ok := msg.(tea.BatchMsg); ok {
		var out []tea.Msg
		for _, c := range b {
			out = append(out, runCmds(c)...)
		}
		return out
	}
	return []tea.Msg{msg}
}

// TestCopyPane: Y sends the chosen pane's text by OSC 52 and writes it to
// the fallback file under the data dir, saying where; f chooses the pane.
func TestCopyPane(t *testing.T) {
	md := newTestModel(t, 120, 40)
	md.runner = nil
	if press(md, text('Y')); !strings.Contains(md.status, "nothing to copy") {
		t.Fatalf("copy before a run: %q", md.status)
	}
	snap := settled(0)
	md.Update(snap)
	msgs := runCmds(press(md, text('Y')))
	var osc string
	for _, m := range msgs {
		if fmt.Sprintf("%T", m) == "tea.setClipboardMsg" {
			osc = fmt.Sprint(m)
		} else {
			md.Update(m)
		}
	}
	if want := snap.Lanes[1].Text(); osc != want {
		t.Fatalf("OSC 52 got %q, want the steered text %q", osc, want)
	}
	data, _ := os.ReadFile(filepath.Join(os.Getenv("GENKIT_DATA_DIR"), clipboardFile))
	if string(data) != snap.Lanes[1].Text() || !strings.Contains(md.status, "copied the steered pane") || !strings.Contains(md.status, clipboardFile) {
		t.Fatalf("fallback file %q, status %q", data, md.status)
	}
	press(md, text('f'))
	for _, m := range runCmds(press(md, text('Y'))) {
		md.Update(m)
	}
	if data, _ := os.ReadFile(filepath.Join(os.Getenv("GENKIT_DATA_DIR"), clipboardFile)); string(data) != snap.Lanes[0].Text() {
		t.Fatalf("f then Y copied %q, want the base text", data)
	}
}

// TestMouseCaptureToggles: m turns mouse capture off (the terminal's own
// selection works) and on again.
func TestMouseCaptureToggles(t *testing.T) {
	md := newTestModel(t, 120, 40)
	if md.View().MouseMode != tea.MouseModeCellMotion {
		t.Fatal("mouse capture is not on at the start")
	}
	press(md, text('m'))
	if md.View().MouseMode != tea.MouseModeNone || !strings.Contains(md.status, "mouse capture off") {
		t.Fatalf("m: mouse mode %v, status %q", md.View().MouseMode, md.status)
	}
	press(md, text('m'))
	if md.View().MouseMode != tea.MouseModeCellMotion {
		t.Fatal("m again did not turn capture back on")
	}
}

// TestEntryClosesWhenTheFocusMoves: a click elsewhere while typing a value
// closes the entry without applying it.
func TestEntryClosesWhenTheFocusMoves(t *testing.T) {
	md := newTestModel(t, 120, 40)
	md.runner = nil
	selectControl(t, md, "alpha")
	press(md, text('='))
	typeText(md, "7")
	md.Update(tea.MouseClickMsg{X: 5, Y: 2})
	if md.tuner.entry.open || md.controls.entry != nil || md.settings.Steering.Alpha != nil {
		t.Fatalf("entry open %v, alpha %v after a click on the prompt", md.tuner.entry.open, md.settings.Steering.Alpha)
	}
}

// TestTypedValueOnAnInactiveControl: a typed value for a control without
// effect (temperature while do_sample is off) is kept, starts no run and
// says why; the entry shows in the narrow layout's strip too.
func TestTypedValueOnAnInactiveControl(t *testing.T) {
	md := newTestModel(t, 80, 24)
	md.runner = nil
	md.settings.Gen.DoSample = sampling.Ptr(false)
	if cmd := enterValue(t, md, "temperature", "0.4"); cmd != nil || md.dirty {
		t.Fatal("a typed value without effect scheduled a rerun")
	}
	if *md.settings.Gen.Temperature != 0.4 || !strings.Contains(md.status, "no effect while do_sample is off") {
		t.Fatalf("temperature %v, status %q", *md.settings.Gen.Temperature, md.status)
	}
	press(md, text('u'))
	if md.settings.Gen.Temperature != nil {
		t.Fatal("undo did not take the typed temperature back")
	}
	selectControl(t, md, "alpha")
	press(md, text('='))
	typeText(md, "x")
	if out := ansi.Strip(md.render()); !strings.Contains(out, "alpha = ") {
		t.Fatalf("the entry does not show at 80x24:\n%s", out)
	}
}

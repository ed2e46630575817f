package tui

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unsafe"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/sessions"
	"github.com/mlx-genkit/genkit/steering"
)

// bindings lists the key.Binding fields of a keymap struct (embedded ones
// included), by field name.
func bindings(v any) map[string]key.Binding {
	out := map[string]key.Binding{}
	bt := reflect.TypeOf(key.Binding{})
	var walk func(reflect.Value, string)
	walk = func(rv reflect.Value, prefix string) {
		for i := 0; i < rv.NumField(); i++ {
			ft := rv.Type().Field(i)
			// The embedded keymaps are unexported: read through the address.
			f := reflect.NewAt(ft.Type, unsafe.Pointer(rv.Field(i).UnsafeAddr())).Elem()
			switch {
			case ft.Type == bt:
				out[prefix+ft.Name] = f.Interface().(key.Binding)
			case ft.Type.Kind() == reflect.Struct:
				walk(f, prefix+ft.Name+".")
			}
		}
	}
	rv := reflect.New(reflect.TypeOf(v)).Elem()
	rv.Set(reflect.ValueOf(v))
	walk(rv, "")
	if len(out) == 0 {
		panic("no bindings")
	}
	return out
}

// TestEveryKeyHasHelpInItsContext: each context's keys (the global ones
// included) have help text, the context's full help covers every one of
// them, and no key is bound twice in a context.
func TestEveryKeyHasHelpInItsContext(t *testing.T) {
	k := newKeyMap()
	for _, c := range []struct {
		name string
		f    focus
		keys any
	}{
		{"controls", focusControls, k.controls},
		{"editor", focusPrompt, k.editor},
		{"editor", focusSystem, k.editor},
		{"vector", focusPositive, k.vector},
		{"vector", focusNegative, k.vector},
		{"picker", focusPicker, k.picker},
		{"inspector", focusInspector, k.inspector},
		{"entry", focusEntry, k.entry},
	} {
		shown := map[string]bool{}
		for _, col := range k.help(c.f).FullHelp() {
			for _, b := range col {
				if b.Help().Key == "" || b.Help().Desc == "" {
					t.Errorf("%s: a help entry without text: %v", c.name, b.Keys())
				}
				for _, s := range b.Keys() {
					shown[s] = true
				}
			}
		}
		owner := map[string]string{}
		all := bindings(c.keys)
		for n, b := range bindings(k.global) {
			all["global."+n] = b
		}
		for n, b := range all {
			if b.Help().Key == "" || b.Help().Desc == "" {
				t.Errorf("%s: %s has no help text", c.name, n)
			}
			for _, s := range b.Keys() {
				if !shown[s] {
					t.Errorf("%s: %s's key %q is not in the context's help", c.name, n, s)
				}
				if o, ok := owner[s]; ok && o != n {
					t.Errorf("%s: %q is bound by %s and %s", c.name, s, o, n)
				}
				owner[s] = n
			}
		}
	}
}

// TestNoRawKeyStrings: keys are matched through bindings only (which the
// help shows), never by comparing a key's string.
func TestNoRawKeyStrings(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	raw := regexp.MustCompile(`\.String\(\)\s*==|==\s*"(esc|enter|tab|,|\.)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(src), "\n") {
			if raw.MatchString(line) {
				t.Errorf("%s:%d matches a raw key string: %s", f, i+1, strings.TrimSpace(line))
			}
		}
	}
}

func press(md *Model, k tea.KeyPressMsg) tea.Cmd {
	_, cmd := md.Update(k)
	return cmd
}

func text(r rune) tea.KeyPressMsg { return tea.KeyPressMsg{Code: r, Text: string(r)} }

func helpLine(md *Model) string {
	lines := strings.Split(ansi.Strip(md.render()), "\n")
	return lines[len(lines)-1]
}

// TestHelpFollowsFocus: the help line shows the focused context's keys, and
// a key means what its context says (q types in the editor, quits in the
// controls).
func TestHelpFollowsFocus(t *testing.T) {
	md := newTestModel(t, 160, 40)
	md.runner = nil
	md.Update(settled(0))
	if h := helpLine(md); !strings.Contains(h, "q quit") || !strings.Contains(h, "←/→ change") {
		t.Fatalf("controls help: %q", h)
	}
	press(md, tea.KeyPressMsg{Code: tea.KeyTab})
	if md.focus != focusPrompt {
		t.Fatal("tab did not focus the prompt")
	}
	if h := helpLine(md); !strings.Contains(h, "tab/esc controls") || strings.Contains(h, "q quit") || !strings.Contains(h, "ctrl+c quit") {
		t.Fatalf("editor help: %q", h)
	}
	if cmd := press(md, text('q')); md.quitting || md.editors.Value(edPrompt) != "Tell me about the ocean.q" {
		t.Fatalf("q in the editor: quitting %v, prompt %q (%v)", md.quitting, md.editors.Value(edPrompt), cmd)
	}
	// Leaving an edited prompt reruns (after the debounce).
	if cmd := press(md, tea.KeyPressMsg{Code: tea.KeyEscape}); cmd == nil || md.focus != focusControls || !md.dirty {
		t.Fatal("esc did not leave the edited prompt for the controls with a rerun")
	}
	press(md, text('v'))
	if h := helpLine(md); md.focus != focusPositive || !strings.Contains(h, "ctrl+g make the vector") || !strings.Contains(h, "tab positive/negative") {
		t.Fatalf("vector help (focus %v): %q", md.focus, h)
	}
	press(md, tea.KeyPressMsg{Code: tea.KeyTab})
	if md.focus != focusNegative {
		t.Fatal("tab did not switch to the negative texts")
	}
	press(md, tea.KeyPressMsg{Code: tea.KeyEscape})
	press(md, text('y'))
	if md.focus != focusSystem || !strings.Contains(ansi.Strip(md.render()), "system prompt") {
		t.Fatal("y did not open the system prompt editor")
	}
	press(md, tea.KeyPressMsg{Code: tea.KeyTab})

	// The inspector takes the focus while it shows.
	press(md, text('i'))
	if h := helpLine(md); md.focus != focusInspector || !strings.Contains(h, ",/. token") || !strings.Contains(h, "esc/i close") {
		t.Fatalf("inspector help (focus %v): %q", md.focus, h)
	}
	press(md, tea.KeyPressMsg{Code: tea.KeyEscape})
	if md.focus != focusControls || md.lanes.inspect {
		t.Fatal("esc did not close the inspector")
	}

	// The picker, once listed (by a command).
	if err := sessions.Save(DefaultSettings().ToSession("other", "tiny-llama")); err != nil {
		t.Fatal(err)
	}
	md.Update(press(md, text('o'))())
	if h := helpLine(md); md.focus != focusPicker || !strings.Contains(h, "enter open") || !strings.Contains(h, "esc/q close") {
		t.Fatalf("picker help (focus %v): %q", md.focus, h)
	}
	press(md, text('q'))
	if md.quitting || md.picker.IsOpen() || md.focus != focusControls {
		t.Fatal("q in the picker should close it, not quit")
	}
}

// TestInspector: , and . move the inspected step within the tokens, and
// the inspector shows both lanes' alternatives there.
func TestInspector(t *testing.T) {
	md := newTestModel(t, 120, 40)
	snap := settled(0)
	for i := range snap.Lanes {
		for j := range snap.Lanes[i].Pieces[:3] {
			snap.Lanes[i].Top = append(snap.Lanes[i].Top, []Alt{{Token: snap.Lanes[i].Pieces[j], Prob: 0.5}, {Token: "x", Prob: 0.25}})
		}
	}
	md.Update(snap)
	press(md, text('i'))
	for range 5 {
		press(md, text('.'))
	}
	if md.lanes.at != 2 {
		t.Fatalf("the inspector went to step %d of 3", md.lanes.at)
	}
	press(md, text(','))
	out := ansi.Strip(md.render())
	if md.lanes.at != 1 || !strings.Contains(out, `base token 1 "ocean ":`) || !strings.Contains(out, `steered token 1 "the ":`) {
		t.Fatalf("inspector at %d:\n%s", md.lanes.at, out)
	}
	press(md, text('i'))
	if md.focus != focusControls || strings.Contains(ansi.Strip(md.render()), "base token") {
		t.Fatal("i did not close the inspector")
	}
}

// TestMouse: the wheel scrolls the lanes; a click on the editor focuses the
// prompt, elsewhere the controls.
func TestMouse(t *testing.T) {
	md := newTestModel(t, 120, 24)
	md.runner = nil
	afterRun(md, 2) // text enough to scroll
	md.Update(tea.MouseWheelMsg{Button: tea.MouseWheelUp})
	if md.lanes.scroll != 3 {
		t.Fatalf("wheel up: scroll %d", md.lanes.scroll)
	}
	md.Update(tea.MouseWheelMsg{Button: tea.MouseWheelDown})
	md.Update(tea.MouseWheelMsg{Button: tea.MouseWheelDown})
	if md.lanes.scroll != 0 {
		t.Fatalf("wheel down: scroll %d", md.lanes.scroll)
	}
	md.Update(tea.MouseClickMsg{X: 5, Y: 2})
	if md.focus != focusPrompt {
		t.Fatal("a click on the editor did not focus it")
	}
	md.Update(tea.MouseClickMsg{X: 5, Y: 20})
	if md.focus != focusControls {
		t.Fatal("a click on the lanes did not go back to the controls")
	}
}

// TestInactiveControls: sampling fields without do_sample and alpha under
// a ramp are greyed out; stepping one changes it (ready for when it
// matters) but starts no run, and says why.
func TestInactiveControls(t *testing.T) {
	md := newTestModel(t, 120, 40)
	md.runner = nil
	sel := func(name string) {
		for md.controls.Selected().name != name {
			press(md, tea.KeyPressMsg{Code: tea.KeyDown})
		}
	}
	grey := md.styles.Inactive.Render("top_k               50")
	if !strings.Contains(md.render(), grey) {
		t.Fatalf("top_k is not greyed without do_sample:\n%q", md.render())
	}
	sel("temperature")
	if cmd := press(md, tea.KeyPressMsg{Code: tea.KeyRight}); cmd != nil || md.dirty || md.settings.Gen.Temp() != 1.05 {
		t.Fatalf("an inactive step: temperature %g, rerun scheduled %v", md.settings.Gen.Temp(), cmd != nil)
	}
	out := ansi.Strip(md.render())
	if !strings.Contains(md.status, "no effect while do_sample is off") || !strings.Contains(out, "no effect: do_sample is off") {
		t.Fatalf("why not shown: status %q\n%s", md.status, out)
	}
	// do_sample on: the sampling fields matter.
	md.settings.Gen.DoSample = sampling.Ptr(true)
	if strings.Contains(md.render(), grey) {
		t.Fatal("top_k greyed with do_sample on")
	}
	if cmd := press(md, tea.KeyPressMsg{Code: tea.KeyRight}); cmd == nil || !md.dirty {
		t.Fatal("an active step scheduled no rerun")
	}
	// Alpha under a ramp.
	md.dirty = false
	sc, err := steering.ParseSchedule("ramp:0:2:16")
	if err != nil {
		t.Fatal(err)
	}
	md.settings.Steering.Schedule = sc
	if cmd := press(md, text(']')); cmd != nil || md.settings.Steering.Alpha == nil || !strings.Contains(md.status, "ramp") {
		t.Fatalf("alpha under a ramp: rerun %v, status %q", cmd != nil, md.status)
	}
	// The model's own do_sample counts while the session sets none.
	mm := newTestModel(t, 120, 40)
	msg := loaded(mm.m, nil)
	msg.modelSamples = true
	mm.Update(msg)
	if strings.Contains(mm.render(), grey) {
		t.Fatal("top_k greyed though the model samples by default")
	}
}

package tui

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/sessions"
	"github.com/mlx-genkit/genkit/steering"
)

var tinyPath = filepath.Join("..", "engine", "testdata", "hf", "llama_tied")

func loadTiny(t testing.TB) *engine.Model {
	t.Helper()
	var m *engine.Model
	if err := mlx.Do(context.Background(), func() error {
		var err error
		m, err = engine.LoadModel(tinyPath, engine.LoadOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mlx.Do(context.Background(), func() error { m.Free(); return nil }) })
	return m
}

// newTestModel is the UI on the tiny model (no runs started) at w x h.
func newTestModel(t *testing.T, w, h int) *Model {
	t.Helper()
	t.Setenv("GENKIT_DATA_DIR", t.TempDir())
	m := loadTiny(t)
	md := New(Options{ModelSpec: "tiny-llama", SessionName: "test", Settings: DefaultSettings(), Theme: "dark"})
	md.Update(loaded(m, nil))
	md.device = "cpu"
	md.Update(tea.WindowSizeMsg{Width: w, Height: h})
	return md
}

func pieces(s string) []string {
	var out []string
	for _, w := range strings.SplitAfter(s, " ") {
		out = append(out, w)
	}
	return out
}

// settled is a finished run's snapshot with fixed text.
func settled(id int) SnapshotMsg {
	base := pieces("The ocean is a vast body of salt water that covers most of the planet and shapes its weather.")
	steer := pieces("Arr, the ocean be a vast and salty beast, matey, coverin' most o' the world and brewin' its storms.")
	mk := func(p []string) Lane {
		l := Lane{Pieces: p}
		for i := range p {
			l.Tokens = append(l.Tokens, i)
			l.Proj = append(l.Proj, float32(i%5))
		}
		return l
	}
	lb, ls := mk(base), mk(steer)
	ls.Tokens[0] = 100 // differ from the first token
	return SnapshotMsg{RunID: id, Lanes: []Lane{lb, ls}, KL: []float64{0.1, 0.5, 0.2, 0.9, 0.4, 0.3}, Steps: len(base),
		Elapsed: 2 * time.Second, Done: true, Finished: "length", Layer: 1}
}

func TestGoldenViews(t *testing.T) {
	for _, size := range [][2]int{{80, 24}, {120, 40}, {200, 50}} {
		t.Run(fmt.Sprintf("%dx%d", size[0], size[1]), func(t *testing.T) {
			md := newTestModel(t, size[0], size[1])
			md.Update(settled(0))
			out := ansi.Strip(md.render())
			if h := strings.Count(out, "\n") + 1; h > size[1] {
				t.Fatalf("view is %d lines, terminal %d", h, size[1])
			}
			for _, line := range strings.Split(out, "\n") {
				if w := ansi.StringWidth(line); w > size[0] {
					t.Fatalf("line of width %d > %d: %q", w, size[0], line)
				}
			}
			golden.RequireEqual(t, []byte(out))
		})
	}
}

func TestControlsChangeSettingsAndRestartAfterDebounce(t *testing.T) {
	md := newTestModel(t, 120, 40)
	before := md.settings.Steering.EffectiveAlpha()
	_, cmd := md.Update(tea.KeyPressMsg{Code: ']', Text: "]"})
	if got := md.settings.Steering.EffectiveAlpha(); math.Abs(got-(before+0.1)) > 1e-9 || md.settings.Steering.Alpha == nil {
		t.Fatalf("alpha %g after ], want %g", got, before+0.1)
	}
	if cmd == nil {
		t.Fatal("no debounce scheduled")
	}
	// Two quick changes: only the last debounce tick starts a run.
	md.Update(tea.KeyPressMsg{Code: ']', Text: "]"})
	gen := md.gen
	md.runner = nil // no engine runs in this test
	md.Update(debounceMsg{gen: gen - 1})
	if !md.dirty {
		t.Fatal("a stale debounce tick consumed the change")
	}
	md.Update(debounceMsg{gen: gen})
	if md.dirty {
		t.Fatal("the latest debounce tick did not fire")
	}
	// Select the temperature control and lower it.
	for md.controls.Selected().name != "temperature" {
		md.Update(tea.KeyPressMsg{Code: tea.KeyDown})
	}
	md.Update(tea.KeyPressMsg{Code: tea.KeyLeft})
	if got := md.settings.Gen.Temp(); got != 0.95 { // Hugging Face's default 1.0, one step down
		t.Fatalf("temperature %g, want 0.95", got)
	}
	md.Update(tea.KeyPressMsg{Code: 'c', Text: "c"})
	if md.settings.Chat {
		t.Fatal("c did not toggle the chat template")
	}
	md.Update(tea.KeyPressMsg{Code: 'w', Text: "w"})
	if !md.settings.Sweep || len(md.settings.laneScales()) != 5 {
		t.Fatal("w did not enable the sweep")
	}
}

func TestStaleSnapshotsAreDropped(t *testing.T) {
	md := newTestModel(t, 120, 40)
	md.runID = 3
	md.Update(settled(2))
	if len(md.lanes.snap.Lanes) != 0 {
		t.Fatal("a cancelled run's snapshot was shown")
	}
	md.Update(settled(3))
	if len(md.lanes.snap.Lanes) != 2 || md.running {
		t.Fatal("the current run's final snapshot was not taken")
	}
}

func TestNarrowTerminalStacksPanes(t *testing.T) {
	md := newTestModel(t, 80, 40)
	md.Update(settled(0))
	out := ansi.Strip(md.render())
	bi, si := strings.Index(out, "base"), strings.Index(out, "steered ·")
	if bi < 0 || si < 0 || strings.Count(out[:si], "\n") == strings.Count(out[:bi], "\n") {
		t.Fatalf("panes not stacked at 80 columns:\n%s", out)
	}
}

func TestQuitAutosavesAndErrorsShow(t *testing.T) {
	md := newTestModel(t, 120, 40)
	md.Update(settled(0))
	md.Update(tea.KeyPressMsg{Code: ']', Text: "]"})
	_, cmd := md.Update(tea.KeyPressMsg{Code: 'q', Text: "q"})
	if cmd == nil {
		t.Fatal("q returned no command")
	}
	if _, ok := cmd().(tea.QuitMsg); !ok {
		t.Fatal("q did not quit")
	}
	if md.ExitCode() != 0 {
		t.Fatalf("q: exit code %d", md.ExitCode())
	}
	// The front end saves once the program has returned, as genkit does.
	if err := md.SaveOnExit(); err != nil {
		t.Fatal(err)
	}
	s, err := sessions.Load("test")
	if err != nil {
		t.Fatal(err)
	}
	if s.Steering.Alpha == nil || *s.Steering.Alpha != 1.1 || !strings.HasPrefix(s.Steered, "Arr") {
		t.Fatalf("autosaved session %+v", s)
	}
	// ctrl+c quits with the interrupt status.
	mc := newTestModel(t, 120, 40)
	if _, cmd := mc.Update(tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}); cmd == nil || mc.ExitCode() != 130 {
		t.Fatalf("ctrl+c: exit code %d", mc.ExitCode())
	}
	// A failed save shows in the UI and keeps the app running.
	md2 := newTestModel(t, 120, 40)
	md2.Update(savedMsg{err: fmt.Errorf("disk full")})
	if out := ansi.Strip(md2.render()); !strings.Contains(out, "disk full") || !strings.Contains(out, "save failed") {
		t.Fatalf("save error not shown:\n%s", out)
	}
	md2.Update(modelLoadedMsg{err: fmt.Errorf("load %s: not a valid GGUF file", "x.gguf")})
	if out := ansi.Strip(md2.render()); !strings.Contains(out, "not a valid GGUF") {
		t.Fatalf("load error not shown:\n%s", out)
	}
}

func TestNoColor(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	md := newTestModel(t, 120, 40)
	md.Update(settled(0))
	out := md.render()
	if strings.Contains(out, "\x1b[38;") || strings.Contains(out, "\x1b[48;") {
		t.Fatal("colour escapes with NO_COLOR set")
	}
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}

func TestSessionPickerOpensASavedSession(t *testing.T) {
	md := newTestModel(t, 120, 40)
	saved := DefaultSettings()
	saved.Prompt = "A saved prompt."
	saved.Steering.Alpha = sampling.Ptr(2.5)
	if err := sessions.Save(saved.ToSession("older", "tiny-llama")); err != nil {
		t.Fatal(err)
	}
	_, cmd := md.Update(tea.KeyPressMsg{Code: 'o', Text: "o"})
	md.Update(cmd())
	if len(md.picker.list) != 1 || md.focus != focusPicker || !strings.Contains(ansi.Strip(md.render()), "older") {
		t.Fatalf("picker: %v\n%s", md.picker.list, ansi.Strip(md.render()))
	}
	md.runner = nil
	_, cmd = md.Update(tea.KeyPressMsg{Code: tea.KeyEnter})
	if md.picker.IsOpen() || md.focus != focusControls || cmd == nil {
		t.Fatal("enter did not close the picker and read the session")
	}
	if md.settings.Steering.EffectiveAlpha() == 2.5 {
		t.Fatal("the session was read in Update, not by its command")
	}
	md.Update(cmd())
	if md.settings.Steering.EffectiveAlpha() != 2.5 || md.editors.Value(edPrompt) != "A saved prompt." || md.sessionName() != "older" {
		t.Fatalf("opened: alpha %g prompt %q session %s", md.settings.Steering.EffectiveAlpha(), md.editors.Value(edPrompt), md.sessionName())
	}
}

// TestMakeVectorFromOwnTexts: contrastive texts typed in the UI become a
// control vector that the next run steers with, at its best layer.
func TestMakeVectorFromOwnTexts(t *testing.T) {
	t.Setenv("GENKIT_DATA_DIR", t.TempDir())
	t.Setenv("GENKIT_CACHE_DIR", t.TempDir())
	m := loadDefault(t)
	md := New(Options{Settings: DefaultSettings(), Theme: "dark"})
	md.Update(loaded(m, nil))
	md.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	md.Update(tea.KeyPressMsg{Code: 'v', Text: "v"})
	if md.focus != focusPositive {
		t.Fatal("v did not open the vector editor")
	}
	md.editors.SetValue(edPositive, "I am overjoyed, what a wonderful day!\nThis is the best news ever, hooray!")
	md.editors.SetValue(edNegative, "I am miserable, what a terrible day.\nThis is the worst news ever, alas.")
	_, cmd := md.Update(tea.KeyPressMsg{Code: 'g', Mod: tea.ModCtrl})
	if cmd == nil {
		t.Fatal("ctrl+g made nothing")
	}
	msg := cmd()
	made, ok := msg.(vectorMadeMsg)
	if !ok || made.err != nil {
		t.Fatalf("vector: %#v", msg)
	}
	md.runner = nil
	md.Update(made)
	if md.settings.Steering.Vector != made.path || md.settings.Steering.Preset != "" || md.settings.Steering.Layer == nil || *md.settings.Steering.Layer != made.best || len(made.sep) != m.NumLayers() {
		t.Fatalf("settings after making a vector: %+v", md.settings.Steering)
	}
	if _, err := os.Stat(made.path); err != nil {
		t.Fatal(err)
	}
}

func TestExportFromTheUI(t *testing.T) {
	t.Setenv("GENKIT_DATA_DIR", t.TempDir())
	m := loadDefault(t)
	md := New(Options{SessionName: "test", Settings: DefaultSettings(), Theme: "dark"})
	md.Update(loaded(m, nil))
	md.runner = nil
	vec := filepath.Join(t.TempDir(), "v.gguf")
	v := make([]float32, m.HiddenSize())
	for i := range v {
		v[i] = float32(i%5) - 2
	}
	if err := (&steering.VectorSet{Vectors: map[int][]float32{3: v}, ModelHint: m.Config.Architecture}).Save(vec); err != nil {
		t.Fatal(err)
	}
	md.settings.Steering.Preset, md.settings.Steering.Vector = "", vec
	export := func() exportedMsg {
		_, cmd := md.Update(tea.KeyPressMsg{Code: 'e', Mod: tea.ModCtrl})
		msg := cmd().(exportedMsg)
		md.Update(msg)
		return msg
	}
	msg := export()
	if msg.err != nil {
		t.Fatal(msg.err)
	}
	want, _ := sessions.ExportDir("test")
	if msg.dir != want {
		t.Fatalf("exported to %s, want the data dir's %s", msg.dir, want)
	}
	for _, f := range []string{"generation_config.json", "steering.json", "steering.gguf", "prompt.txt", "README.md"} {
		if _, err := os.Stat(filepath.Join(want, f)); err != nil {
			t.Errorf("export lacks %s: %v", f, err)
		}
	}
	// A second export never replaces the first silently: it asks, and only
	// ctrl+e right after replaces it.
	if again := export(); !again.exists || !md.exportPending || !strings.Contains(md.status, "again replaces") {
		t.Fatalf("second export: %+v, status %q", again, md.status)
	}
	md.Update(tea.KeyPressMsg{Code: tea.KeyDown}) // any other key cancels the replacement
	if md.exportPending {
		t.Fatal("another key kept the pending replacement")
	}
	export()
	if third := export(); third.err != nil || third.exists || third.dir != want {
		t.Fatalf("replacing the export: %+v", third)
	}
}

// TestCalibratedKey: K applies the stored calibration of the preset and mode
// for this model (alpha and layer, then a rerun), and says so when there is
// none.
func TestCalibratedKey(t *testing.T) {
	md := newTestModel(t, 120, 40)
	md.runner = nil
	press := func() {
		_, cmd := md.Update(tea.KeyPressMsg{Code: 'K', Text: "K"})
		if cmd == nil {
			t.Fatal("K started no lookup")
		}
		md.Update(cmd())
	}
	press()
	if !strings.Contains(md.status, "no calibration for pirate (residual)") {
		t.Fatalf("status without a calibration: %q", md.status)
	}
	fp, err := steering.Fingerprint(md.m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := steering.SaveCalibration(steering.Calibration{Preset: "pirate", Mode: "residual", Model: fp, Alpha: 2.5, Layer: 1, Found: true}); err != nil {
		t.Fatal(err)
	}
	press()
	if md.settings.Steering.EffectiveAlpha() != 2.5 || md.settings.Steering.Layer == nil || *md.settings.Steering.Layer != 1 || !md.dirty {
		t.Fatalf("after K: alpha %g layer %v dirty %v (status %q)", md.settings.Steering.EffectiveAlpha(), md.settings.Steering.Layer, md.dirty, md.status)
	}
}

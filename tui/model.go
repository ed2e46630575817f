package tui

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textarea"
	tea "charm.land/bubbletea/v2"
	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/sessions"
	"github.com/mlx-genkit/genkit/steering"
	"github.com/mlx-genkit/genkit/themes"
)

const (
	debounce     = 300 * time.Millisecond
	autosaveTick = time.Minute
)

type focus int

const (
	focusControls focus = iota
	focusPrompt
	focusSystem
	focusPositive // contrastive texts for a vector of the user's own
	focusNegative
)

// Options start the UI.
type Options struct {
	ModelSpec   string // what the user gave (--model), "" for the default
	SessionName string
	Settings    Settings
	StartNow    bool   // start the prompt at once
	Theme       string // "" picks from the terminal background
	// Load loads the model (in the background); tests pass their own.
	Load func() (*engine.Model, error)
	// Notice, when set, is shown while the model loads and the first run
	// starts (the GPU kernels being compiled on a first run).
	Notice string
}

// Messages of the UI's own.
type (
	modelLoadedMsg struct {
		m   *engine.Model
		err error
	}
	debounceMsg struct{ gen int }
	autosaveMsg struct{}
	memoryMsg   struct{ stats engine.MemoryStats }
	savedMsg    struct {
		err  error
		what string
	}
	startedMsg struct{ id int }
)

// Model is the root Bubble Tea model.
type Model struct {
	opts       Options
	settings   Settings
	m          *engine.Model
	runner     *Runner
	send       func(tea.Msg)
	keys       keyMap
	help       help.Model
	prompt     textarea.Model
	system     textarea.Model
	controls   []control
	selected   int
	focus      focus
	width      int
	height     int
	styles     themes.Styles
	palette    int
	plain      bool
	themeFixed bool
	runID      int
	snap       SnapshotMsg
	running    bool
	progress   string
	status     string
	err        error
	gen        int
	scroll     int
	showHelp   bool
	inspect    bool
	inspectAt  int
	memory     engine.MemoryStats
	device     string
	dirty      bool
	quitting   bool
	exitCode   int
	picker     []sessions.Info // the session list, while open
	picked     int
	positive   textarea.Model
	negative   textarea.Model
	making     bool // a vector of the user's own is being made
}

// New makes the UI model. send is Program.Send (set with SetSend before the
// program starts when the runner must reach it).
func New(opts Options) *Model {
	md := &Model{opts: opts, settings: opts.Settings, keys: newKeyMap(), help: help.New(), plain: themes.NoColor()}
	md.prompt = textarea.New()
	md.prompt.Placeholder = "Type a prompt…"
	md.prompt.ShowLineNumbers = false
	md.prompt.SetValue(md.settings.Prompt)
	md.system = textarea.New()
	md.system.Placeholder = "System prompt (optional)"
	md.system.ShowLineNumbers = false
	md.system.SetValue(md.settings.System)
	md.positive = textarea.New()
	md.positive.Placeholder = "Positive texts, one per line (the persona)"
	md.positive.ShowLineNumbers = false
	md.negative = textarea.New()
	md.negative.Placeholder = "Negative texts, one per line (the opposite), paired by line"
	md.negative.ShowLineNumbers = false
	md.focus = focusControls
	pal := themes.Dark
	if opts.Theme != "" {
		if p, err := themes.ByName(opts.Theme); err == nil {
			pal = p
			md.themeFixed = true
		}
	}
	md.setPalette(pal)
	if md.plain {
		// NO_COLOR: the components' own colours go too.
		md.help.Styles = help.Styles{}
		md.prompt.SetStyles(textarea.Styles{})
		md.system.SetStyles(textarea.Styles{})
		md.positive.SetStyles(textarea.Styles{})
		md.negative.SetStyles(textarea.Styles{})
	}
	md.status = "loading the model…"
	if opts.Notice != "" {
		md.status = "loading the model; " + opts.Notice
	}
	return md
}

// SetSend connects the runner to the program.
func (md *Model) SetSend(send func(tea.Msg)) { md.send = send }

func (md *Model) setPalette(p themes.Palette) {
	md.styles = themes.NewStyles(p, md.plain)
	for i, q := range themes.All {
		if q.Name == p.Name {
			md.palette = i
		}
	}
}

// Init implements tea.Model.
func (md *Model) Init() tea.Cmd {
	load := md.opts.Load
	cmds := []tea.Cmd{func() tea.Msg {
		m, err := load()
		return modelLoadedMsg{m, err}
	}, tea.Tick(autosaveTick, func(time.Time) tea.Msg { return autosaveMsg{} })}
	if !md.themeFixed {
		cmds = append(cmds, tea.RequestBackgroundColor)
	}
	return tea.Batch(cmds...)
}

func (md *Model) sessionName() string {
	if md.opts.SessionName != "" {
		return md.opts.SessionName
	}
	return "autosave"
}

// startRun cancels the run in flight and starts a new one (the runner does
// both).
func (md *Model) startRun() tea.Cmd {
	if md.m == nil || md.runner == nil {
		return nil
	}
	md.settings.Prompt = md.prompt.Value()
	md.settings.System = md.system.Value()
	md.runID = md.runner.Start(md.settings)
	md.running = true
	md.err = nil
	md.progress = ""
	md.snap = SnapshotMsg{RunID: md.runID}
	md.scroll = 0
	md.status = fmt.Sprintf("run %d started", md.runID)
	if md.runID == 1 && md.opts.Notice != "" {
		md.status += "; " + md.opts.Notice
	}
	return nil
}

// changed schedules a restart after the debounce delay.
func (md *Model) changed() tea.Cmd {
	md.gen++
	md.dirty = true
	g := md.gen
	return tea.Tick(debounce, func(time.Time) tea.Msg { return debounceMsg{g} })
}

// session is the current state as a session to save.
func (md *Model) session() *sessions.Session {
	s := md.settings
	s.Prompt, s.System = md.prompt.Value(), md.system.Value()
	ss := s.ToSession(md.sessionName(), md.opts.ModelSpec)
	if len(md.snap.Lanes) > 1 {
		ss.Base, ss.Steered = md.snap.Lanes[0].Text(), md.snap.Lanes[1].Text()
	}
	return ss
}

func (md *Model) save() error { return sessions.Save(md.session()) }

// exportCmd writes the export folder in the background from a copy of the
// current settings, the plan resolved against the model (so an export
// before any run names the layer a run would steer).
func (md *Model) exportCmd() tea.Cmd {
	s := md.settings
	s.Prompt, s.System = md.prompt.Value(), md.system.Value()
	ss := s.ToSession(md.sessionName(), md.opts.ModelSpec)
	m, id := md.m, modelID(md.opts.ModelSpec, md.m)
	dir := filepath.Join(".", "genkit-export-"+md.sessionName())
	return func() tea.Msg {
		r, err := steering.Resolve(context.Background(), m, ss.Steering, nil)
		if err != nil {
			return savedMsg{err: fmt.Errorf("export: %w", err)}
		}
		err = sessions.Export(ss, dir, sessions.ExportOptions{ModelID: id, HiddenLayers: m.NumLayers(), Layer: r.Layer, Alpha: r.Alpha,
			SaveVector: func(path string) error { return r.SaveVector(m, path) }})
		return savedMsg{err: err, what: "exported to " + dir}
	}
}

// calibrationMsg carries a stored calibration looked up for a preset and
// mode (the K key).
type calibrationMsg struct {
	c            steering.Calibration
	ok           bool
	err          error
	preset, mode string
}

func modelID(spec string, m *engine.Model) string {
	if spec != "" {
		return spec
	}
	if m != nil {
		return m.Source
	}
	return ""
}

// Update implements tea.Model.
func (md *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		md.width, md.height = msg.Width, msg.Height
		md.layout()
		return md, nil
	case tea.BackgroundColorMsg:
		if !md.themeFixed {
			md.setPalette(themes.ForBackground(msg.IsDark()))
		}
		return md, nil
	case modelLoadedMsg:
		if msg.err != nil {
			md.err = msg.err
			md.status = "model failed to load"
			return md, nil
		}
		md.m = msg.m
		send := md.send
		if send == nil {
			send = func(tea.Msg) {}
		}
		md.runner = NewRunner(md.m, send)
		var names []string
		if ps, err := steering.Presets(); err == nil {
			for _, p := range ps {
				names = append(names, p.Name)
			}
		}
		md.controls = newControls(md.m.NumLayers(), names)
		md.status = "ready"
		if dev, err := deviceName(); err == nil {
			md.device = dev
		}
		if md.opts.StartNow {
			return md, md.startRun()
		}
		return md, nil
	case SnapshotMsg:
		if msg.RunID != md.runID {
			return md, nil // a cancelled run's tokens never show
		}
		md.snap = msg
		if msg.Done {
			md.running = false
			md.err = msg.Err
			md.status = fmt.Sprintf("run %d %s: %d tokens at %.1f tokens/s", msg.RunID, msg.Finished, msg.Steps, msg.TokensPerSecond())
			return md, readMemory
		}
		return md, nil
	case ProgressMsg:
		if msg.RunID == md.runID {
			md.progress = fmt.Sprintf("%s: %d/%d prompts", msg.What, msg.Done, msg.Total)
		}
		return md, nil
	case debounceMsg:
		if msg.gen == md.gen && md.dirty {
			md.dirty = false
			return md, md.startRun()
		}
		return md, nil
	case autosaveMsg:
		var cmd tea.Cmd
		if md.m != nil {
			cmd = saveCmd(md, "autosaved")
		}
		return md, tea.Batch(cmd, tea.Tick(autosaveTick, func(time.Time) tea.Msg { return autosaveMsg{} }))
	case savedMsg:
		if msg.err != nil {
			md.err = msg.err
			md.status = "save failed (the session is still open; try again)"
		} else {
			md.status = msg.what
		}
		return md, nil
	case memoryMsg:
		md.memory = msg.stats
		return md, nil
	case calibrationMsg:
		switch {
		case msg.err != nil:
			md.status = "calibration: " + msg.err.Error()
		case msg.preset != md.settings.Steering.Preset || msg.mode != string(md.settings.Steering.Mode):
			// The preset or mode changed while looking: stale.
		case !msg.ok:
			md.status = fmt.Sprintf("no calibration for %s (%s) on this model: genkit vector calibrate --preset %s --mode %s", msg.preset, msg.mode, msg.preset, msg.mode)
		case !msg.c.Found:
			md.status = fmt.Sprintf("%s (%s) has no sound setting on this model: %s", msg.preset, msg.mode, msg.c.Why)
		default:
			md.settings.Steering.Alpha, md.settings.Steering.Layer = &msg.c.Alpha, &msg.c.Layer
			md.status = fmt.Sprintf("calibrated %s (%s): alpha %g, layer %d", msg.preset, msg.mode, msg.c.Alpha, msg.c.Layer)
			return md, md.changed()
		}
		return md, nil
	case vectorMadeMsg:
		md.making = false
		if msg.err != nil {
			md.err = msg.err
			return md, nil
		}
		md.settings.Steering.Preset, md.settings.Steering.Vector, md.settings.Steering.Layer = "", msg.path, &msg.best
		md.snap.Separated = msg.sep
		md.status = fmt.Sprintf("made %s: best separation at layer %d (%.2f); steering with it", filepath.Base(msg.path), msg.best, msg.sep[msg.best])
		md.setFocus(focusControls)
		return md, md.startRun()
	case sessionsMsg:
		if msg.err != nil {
			md.err = msg.err
			return md, nil
		}
		if len(msg.list) == 0 {
			md.status = "no saved sessions yet"
			return md, nil
		}
		md.picker, md.picked = msg.list, 0
		return md, nil
	case tea.MouseWheelMsg:
		if msg.Button == tea.MouseWheelUp {
			md.scroll = max(0, md.scroll-3)
		} else {
			md.scroll += 3
		}
		return md, nil
	case tea.MouseClickMsg:
		// Clicking the prompt area focuses the editor; elsewhere the controls.
		if msg.Y >= 1 && msg.Y <= md.promptHeight() {
			md.setFocus(focusPrompt)
		} else {
			md.setFocus(focusControls)
		}
		return md, nil
	case SignalMsg:
		return md.quit(0)
	case tea.KeyPressMsg:
		return md.handleKey(msg)
	}
	return md, md.updateEditors(msg)
}

func (md *Model) updateEditors(msg tea.Msg) tea.Cmd {
	var cmd tea.Cmd
	switch md.focus {
	case focusPrompt:
		md.prompt, cmd = md.prompt.Update(msg)
	case focusSystem:
		md.system, cmd = md.system.Update(msg)
	case focusPositive:
		md.positive, cmd = md.positive.Update(msg)
	case focusNegative:
		md.negative, cmd = md.negative.Update(msg)
	}
	return cmd
}

func (md *Model) setFocus(f focus) {
	md.focus = f
	md.prompt.Blur()
	md.system.Blur()
	md.positive.Blur()
	md.negative.Blur()
	switch f {
	case focusPrompt:
		md.prompt.Focus()
	case focusSystem:
		md.system.Focus()
	case focusPositive:
		md.positive.Focus()
	case focusNegative:
		md.negative.Focus()
	}
}

// SignalMsg asks the UI to quit at once, saving the session, because the
// process received a signal (SIGINT, SIGTERM or SIGHUP).
type SignalMsg struct{}

// WaitRunner waits up to d for the background run to end (after quitting)
// and reports whether it did.
func (md *Model) WaitRunner(d time.Duration) bool {
	if md.runner == nil {
		return true
	}
	return md.runner.Wait(d)
}

// ExitCode is the exit status the UI asks for: 0 after q, 130 after ctrl+c.
func (md *Model) ExitCode() int { return md.exitCode }

// quit cancels the run in flight without waiting for it (the run may be
// blocked sending to this very loop) and quits at once, so the terminal is
// restored; the caller saves the session after the program returns
// (SaveOnExit), outside the event loop.
func (md *Model) quit(code int) (tea.Model, tea.Cmd) {
	if md.quitting {
		return md, nil
	}
	md.quitting = true
	md.exitCode = code
	if md.runner != nil {
		md.runner.Cancel()
	}
	return md, tea.Quit
}

// SaveOnExit saves the session once the program has returned (whether it
// quit or was killed); it does nothing when no model was loaded.
func (md *Model) SaveOnExit() error {
	if md.m == nil {
		return nil
	}
	return md.save()
}

func (md *Model) handleKey(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	k := md.keys
	if key.Matches(msg, k.ForceQuit) {
		return md.quit(130)
	}
	if key.Matches(msg, k.Run) {
		md.dirty = false
		return md, md.startRun()
	}
	if key.Matches(msg, k.Save) {
		return md, saveCmd(md, "saved session "+md.sessionName())
	}
	if md.focus == focusPositive || md.focus == focusNegative {
		switch msg.String() {
		case "tab":
			if md.focus == focusPositive {
				md.setFocus(focusNegative)
			} else {
				md.setFocus(focusPositive)
			}
			return md, nil
		case "esc":
			md.setFocus(focusControls)
			return md, nil
		case "ctrl+g":
			return md, md.makeVector()
		}
		return md, md.updateEditors(msg)
	}
	if key.Matches(msg, k.Focus) {
		switch md.focus {
		case focusControls:
			md.setFocus(focusPrompt)
		default:
			md.setFocus(focusControls)
			if md.prompt.Value() != md.settings.Prompt || md.system.Value() != md.settings.System {
				return md, md.changed()
			}
		}
		return md, nil
	}
	if md.picker != nil {
		return md.pickerKey(msg)
	}
	if md.focus != focusControls {
		if msg.String() == "esc" {
			md.setFocus(focusControls)
			return md, md.changed()
		}
		return md, md.updateEditors(msg)
	}
	switch {
	case key.Matches(msg, k.Quit):
		return md.quit(0)
	case key.Matches(msg, k.Help):
		md.showHelp = !md.showHelp
		md.help.ShowAll = md.showHelp
	case key.Matches(msg, k.Up):
		md.selected = max(0, md.selected-1)
	case key.Matches(msg, k.Down):
		md.selected = min(len(md.controls)-1, md.selected+1)
	case key.Matches(msg, k.Inc), key.Matches(msg, k.Dec):
		if md.selected < len(md.controls) {
			d := 1
			if key.Matches(msg, k.Dec) {
				d = -1
			}
			md.controls[md.selected].step(&md.settings, d)
			return md, md.changed()
		}
	case key.Matches(msg, k.AlphaUp), key.Matches(msg, k.AlphaDown):
		d := 1
		if key.Matches(msg, k.AlphaDown) {
			d = -1
		}
		if len(md.controls) > 0 {
			md.controls[0].step(&md.settings, d)
			return md, md.changed()
		}
	case key.Matches(msg, k.Sweep):
		md.settings.Sweep = !md.settings.Sweep
		return md, md.changed()
	case key.Matches(msg, k.Chat):
		md.settings.Chat = !md.settings.Chat
		return md, md.changed()
	case key.Matches(msg, k.System):
		md.setFocus(focusSystem)
	case key.Matches(msg, k.Theme):
		md.setPalette(themes.All[(md.palette+1)%len(themes.All)])
		md.themeFixed = true
	case key.Matches(msg, k.Inspect):
		md.inspect = !md.inspect
	case key.Matches(msg, k.ScrollUp):
		md.scroll = max(0, md.scroll-5)
	case key.Matches(msg, k.ScrollDown):
		md.scroll += 5
	case key.Matches(msg, k.MakeVector):
		md.setFocus(focusPositive)
	case key.Matches(msg, k.Calibrated):
		if md.m == nil || md.settings.Steering.Preset == "" {
			md.status = "calibration applies to presets: choose one first"
			return md, nil
		}
		m, preset, mode := md.m, md.settings.Steering.Preset, string(md.settings.Steering.Mode)
		return md, func() tea.Msg {
			fp, err := steering.Fingerprint(m)
			if err != nil {
				return calibrationMsg{err: err}
			}
			c, ok, err := steering.LookupCalibration(preset, mode, fp)
			return calibrationMsg{c: c, ok: ok, err: err, preset: preset, mode: mode}
		}
	case key.Matches(msg, k.Open):
		return md, func() tea.Msg {
			list, err := sessions.List()
			return sessionsMsg{list, err}
		}
	case key.Matches(msg, k.Export):
		if md.m == nil {
			return md, nil
		}
		return md, md.exportCmd()
	case msg.String() == ",":
		md.inspectAt = max(0, md.inspectAt-1)
	case msg.String() == ".":
		md.inspectAt++
	}
	return md, nil
}

// pickerKey moves in the session list; enter opens the session (its
// settings replace the current ones, and it becomes the autosave target).
func (md *Model) pickerKey(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	switch {
	case key.Matches(msg, md.keys.Up):
		md.picked = max(0, md.picked-1)
	case key.Matches(msg, md.keys.Down):
		md.picked = min(len(md.picker)-1, md.picked+1)
	case msg.String() == "enter":
		info := md.picker[md.picked]
		md.picker = nil
		if info.Err != nil {
			md.err = info.Err
			return md, nil
		}
		s, err := sessions.Load(info.Name)
		if err != nil {
			md.err = err
			return md, nil
		}
		md.settings = FromSession(s)
		md.prompt.SetValue(md.settings.Prompt)
		md.system.SetValue(md.settings.System)
		md.opts.SessionName = info.Name
		md.status = "opened session " + info.Name
		return md, md.startRun()
	case msg.String() == "esc", key.Matches(msg, md.keys.Quit):
		md.picker = nil
	}
	return md, nil
}

// saveCmd saves a copy of the current session in the background.
func saveCmd(md *Model, what string) tea.Cmd {
	ss := md.session()
	return func() tea.Msg { return savedMsg{err: sessions.Save(ss), what: what} }
}

func readMemory() tea.Msg {
	st, _ := engine.Memory(context.Background())
	return memoryMsg{st}
}

func deviceName() (string, error) {
	d, err := engine.Device(context.Background())
	return d.Device.String(), err
}

// sessionsMsg carries the saved sessions for the picker.
type sessionsMsg struct {
	list []sessions.Info
	err  error
}

// vectorMadeMsg reports a vector made from the user's contrastive texts.
type vectorMadeMsg struct {
	path string
	best int
	sep  map[int]float64
	err  error
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// makeVector extracts a vector from the positive and negative editors in
// the background (progress in the status bar), saves it as a control
// vector under the cache dir and steers with it at its best layer.
func (md *Model) makeVector() tea.Cmd {
	if md.m == nil || md.making {
		return nil
	}
	pos, neg := lines(md.positive.Value()), lines(md.negative.Value())
	m, send, id := md.m, md.send, md.runID
	md.making = true
	md.status = "making a vector from your texts…"
	return func() tea.Msg {
		pairs, err := steering.TextPairs(m, pos, neg)
		if err != nil {
			return vectorMadeMsg{err: err}
		}
		ex, err := steering.Extract(context.Background(), m, pairs, steering.ExtractOptions{Progress: func(done, total int) {
			if send != nil {
				send(ProgressMsg{RunID: id, What: "reading hidden states", Done: done, Total: total})
			}
		}})
		if err != nil {
			return vectorMadeMsg{err: err}
		}
		dir, err := engine.CacheDir()
		if err != nil {
			return vectorMadeMsg{err: err}
		}
		path := filepath.Join(dir, "vectors", "custom", time.Now().Format("20060102-150405")+".gguf")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return vectorMadeMsg{err: err}
		}
		err = (&steering.VectorSet{Vectors: ex.Vectors, ModelHint: m.Config.Architecture}).Save(path)

		return vectorMadeMsg{path: path, best: ex.BestLayer(), sep: ex.Separation, err: err}
	}
}

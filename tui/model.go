package tui

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
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

// focus is the context that receives keys; each has its keymap and help.
type focus int

const (
	focusControls focus = iota
	focusPrompt
	focusSystem
	focusPositive // contrastive texts for a vector of the user's own
	focusNegative
	focusPicker    // the session list
	focusInspector // the token inspector
	focusEntry     // a typed value or session name (tuner.go)
)

// editor is the editor a focus types into, if any.
func (f focus) editor() (editorKind, bool) {
	switch f {
	case focusPrompt:
		return edPrompt, true
	case focusSystem:
		return edSystem, true
	case focusPositive:
		return edPositive, true
	case focusNegative:
		return edNegative, true
	}
	return 0, false
}

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
	// Leader, when set, runs the model work (runs, making a vector, an
	// export's resolve) on every rank of a model sharded under genkit
	// launch; nil runs it here alone.
	Leader *steering.Leader
}

// Messages of the UI's own.
type (
	// modelLoadedMsg carries the loaded model and what the UI reads about
	// it once (in the loading command, off the event loop).
	modelLoadedMsg struct {
		m            *engine.Model
		err          error
		presets      []string // the shipped presets' names
		device       string
		modelSamples bool // the model's generation_config.json sets do_sample
	}
	debounceMsg struct{ gen int }
	autosaveMsg struct{}
	memoryMsg   struct{ stats engine.MemoryStats }
	savedMsg    struct {
		err  error
		what string
	}
	// calibrationMsg carries a stored calibration looked up for a preset
	// and mode (the K key).
	calibrationMsg struct {
		c            steering.Calibration
		ok           bool
		err          error
		preset, mode string
	}
	// vectorMadeMsg reports a vector made from the user's contrastive
	// texts.
	vectorMadeMsg struct {
		path string
		best int
		sep  map[int]float64
		err  error
	}
)

// Model is the root Bubble Tea model. It owns what cuts across the UI (the
// settings, the model and its runner, the run's state, the status line, the
// terminal size, the theme and the focus) and routes messages to its
// children: the editors, the controls panel, the session picker and the
// lanes (with the token inspector). Update does no I/O and no MLX work:
// loading, saving, listing, exporting, calibration look-ups and making a
// vector are commands; starting a run hands the settings to the runner's
// goroutine.
type Model struct {
	opts     Options
	settings Settings
	m        *engine.Model
	runner   *Runner
	send     func(tea.Msg)
	// ctx lives until the UI quits; commands in flight (export, making a
	// vector) stop with it.
	ctx    context.Context
	cancel context.CancelFunc
	// exportPending: the last ctrl+e found an earlier export; the next one
	// (right after) replaces it.
	exportPending bool

	focus    focus
	keys     keyMap
	help     help.Model
	editors  editors
	controls controlsPanel
	picker   sessionPicker
	lanes    lanes
	compare  compareState // the run history and the pinned run (compare.go)

	width, height int
	styles        themes.Styles
	palette       int
	plain         bool
	themeFixed    bool

	runID    int
	running  bool
	progress string
	status   string
	err      error
	gen      int  // debounce generation
	dirty    bool // settings changed since the run started
	making   bool // a vector of the user's own is being made
	memory   engine.MemoryStats
	device   string
	quitting bool
	exitCode int

	// debouncing: a debounceMsg is pending; changedAt: the last change.
	debouncing bool
	changedAt  time.Time
	frame      frameCache // the last frame drawn (frame.go)
	tuner      tuner      // entry, undo/redo, copy and mouse (tuner.go)
}

// New makes the UI model. send is Program.Send (set with SetSend before the
// program starts when the runner must reach it).
func New(opts Options) *Model {
	keys := newKeyMap()
	md := &Model{opts: opts, settings: opts.Settings, keys: keys, help: help.New(), plain: themes.NoColor()}
	md.ctx, md.cancel = context.WithCancel(context.Background())
	md.editors = newEditors(md.settings.Prompt, md.settings.System, md.plain)
	md.controls = controlsPanel{keys: keys.controls.panelKeys}
	md.picker = sessionPicker{keys: keys.picker}
	md.lanes = lanes{keys: keys.inspector}
	md.compare = compareState{keys: keys.controls.compareKeys, at: -1}
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
	md.themeEditors()
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
		return loaded(m, err)
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
// both, on its own goroutine).
func (md *Model) startRun() tea.Cmd {
	if md.m == nil || md.runner == nil {
		return nil
	}
	md.settings.Prompt = md.editors.Value(edPrompt)
	md.settings.System = md.editors.Value(edSystem)
	md.runID = md.startRunner() // one run, or a sweep's (sweep.go)
	md.compare.started(md.runID, md.settings)
	md.running = true
	md.err = nil
	md.progress = ""
	md.lanes.Reset(md.runID)
	md.status = fmt.Sprintf("run %d started", md.runID)
	if md.runID == 1 && md.opts.Notice != "" {
		md.status += "; " + md.opts.Notice
	}
	return nil
}

// changed schedules a restart the debounce delay after the last change.
// Under a storm of changes only the first schedules a tick; the tick, when
// changes came after it, schedules the rest of the delay (debounceMsg), so
// one tick is pending at a time and one run follows the last change.
func (md *Model) changed() tea.Cmd {
	md.noteChange() // for undo (tuner.go)
	md.gen++
	md.dirty = true
	md.changedAt = time.Now()
	if md.debouncing {
		return nil
	}
	md.debouncing = true
	return debounceTick(debounce, md.gen)
}

// session is the current state as a session to save.
func (md *Model) session() *sessions.Session {
	s := md.settings
	s.Prompt, s.System = md.editors.Value(edPrompt), md.editors.Value(edSystem)
	ss := s.ToSession(md.sessionName(), md.opts.ModelSpec)
	if snap := md.lanes.snap; len(snap.Lanes) > 1 {
		ss.Base, ss.Steered = snap.Lanes[0].Text(), snap.Lanes[1].Text()
	}
	return ss
}

// update handles a message (Update, in frame.go, wraps it): the UI's own
// messages here, keys and mouse by focus to the children.
func (md *Model) update(msg tea.Msg) (tea.Model, tea.Cmd) {
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
		md.runner = NewRunner(md.m, md.opts.Leader, send)
		md.controls.list = newControls(md.m.NumLayers(), msg.presets, msg.modelSamples)
		md.startHistory()
		md.device = msg.device
		md.status = "ready"
		if md.opts.StartNow {
			return md, md.startRun()
		}
		return md, nil
	case SnapshotMsg:
		if msg.RunID != md.runID {
			return md, nil // a cancelled run's tokens never show
		}
		md.lanes.snap = msg
		if msg.Done {
			md.compare.finished(msg)
			md.running = false
			md.err = msg.Err
			md.status = fmt.Sprintf("run %d %s: %d tokens at %.1f tokens/s", msg.RunID, msg.Finished, msg.Steps, msg.TokensPerSecond())
			return md, md.readMemory
		}
		return md, nil
	case ProgressMsg:
		if msg.RunID == md.runID {
			md.progress = fmt.Sprintf("%s: %d/%d prompts", msg.What, msg.Done, msg.Total)
		}
		return md, nil
	case debounceMsg:
		md.debouncing = false
		if !md.dirty {
			return md, nil
		}
		if msg.gen != md.gen {
			// Changed since this tick was scheduled: wait out the rest of
			// the delay after the last change (one tick at a time).
			md.debouncing = true
			return md, debounceTick(debounce-time.Since(md.changedAt), md.gen)
		}
		md.dirty = false
		return md, md.startRun()
	case autosaveMsg:
		var cmd tea.Cmd
		if md.m != nil {
			cmd = md.saveCmd("autosaved")
		}
		return md, tea.Batch(cmd, tea.Tick(autosaveTick, func(time.Time) tea.Msg { return autosaveMsg{} }))
	case exportedMsg:
		switch {
		case msg.err != nil:
			md.err = msg.err
			md.status = "export failed"
		case msg.exists:
			md.exportPending = true
			md.status = "an export of this session is already in " + msg.dir + ": ctrl+e again replaces it"
		default:
			md.status = "exported to " + msg.dir
		}
		return md, nil
	case sessionNamedMsg:
		return md, md.named(msg)
	case copiedMsg:
		md.copied(msg)
		return md, nil
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
		return md, md.calibrated(msg)
	case vectorMadeMsg:
		md.making = false
		if msg.err != nil {
			md.err = msg.err
			return md, nil
		}
		md.settings.Steering.Preset, md.settings.Steering.Vector, md.settings.Steering.Layer = "", msg.path, &msg.best
		md.lanes.snap.Separated = msg.sep
		md.status = fmt.Sprintf("made %s: best separation at layer %d (%.2f); steering with it", filepath.Base(msg.path), msg.best, msg.sep[msg.best])
		md.setFocus(focusControls)
		return md, md.startRun()
	case sessionsMsg:
		switch {
		case msg.err != nil:
			md.err = msg.err
		case len(msg.list) == 0:
			md.status = "no saved sessions yet"
		default:
			md.picker.Open(msg.list)
			md.setFocus(focusPicker)
		}
		return md, nil
	case sessionOpenedMsg:
		if msg.err != nil {
			md.err = msg.err
			return md, nil
		}
		md.settings = FromSession(msg.s)
		md.editors.SetValue(edPrompt, md.settings.Prompt)
		md.editors.SetValue(edSystem, md.settings.System)
		md.opts.SessionName = msg.name
		md.dirty = false
		md.noteChange() // undo goes back to the settings before the open
		cmd := md.startRun()
		md.status = "opened session " + msg.name
		return md, cmd
	case tea.MouseWheelMsg:
		md.lanes.Update(msg)
		md.clampScroll()
		return md, nil
	case tea.MouseClickMsg:
		// Clicking the editor focuses the prompt; elsewhere the controls.
		if msg.Y >= 1 && msg.Y <= md.editors.Height() {
			if _, ok := md.focus.editor(); !ok {
				return md, md.setFocus(focusPrompt)
			}
			return md, nil
		}
		return md, md.leave()
	case SignalMsg:
		return md.quit(0)
	case tea.KeyPressMsg:
		return md.handleKey(msg)
	}
	// Anything else (the cursor's blink, a paste) goes to the editor.
	return md, md.editors.Update(msg)
}

// calibrated applies a calibration found by K (unless the preset or mode
// changed while looking).
func (md *Model) calibrated(msg calibrationMsg) tea.Cmd {
	switch {
	case msg.err != nil:
		md.status = "calibration: " + msg.err.Error()
	case msg.preset != md.settings.Steering.Preset || msg.mode != string(md.settings.Steering.Mode):
		// Stale.
	case !msg.ok:
		md.status = fmt.Sprintf("no calibration for %s (%s) on this model: genkit vector calibrate --preset %s --mode %s", msg.preset, msg.mode, msg.preset, msg.mode)
	case !msg.c.Found:
		md.status = fmt.Sprintf("%s (%s) has no sound setting on this model: %s", msg.preset, msg.mode, msg.c.Why)
	default:
		md.settings.Steering.Alpha, md.settings.Steering.Layer = &msg.c.Alpha, &msg.c.Layer
		md.status = fmt.Sprintf("calibrated %s (%s): alpha %g, layer %d", msg.preset, msg.mode, msg.c.Alpha, msg.c.Layer)
		return md.changed()
	}
	return nil
}

// setFocus moves the focus, focusing or blurring the editors and closing
// the inspector or the picker when they lose it.
func (md *Model) setFocus(f focus) tea.Cmd {
	md.focus = f
	md.lanes.SetInspect(f == focusInspector)
	if f != focusPicker {
		md.picker.list = nil
	}
	if k, ok := f.editor(); ok {
		return md.editors.Focus(k)
	}
	md.editors.Blur()
	return nil
}

// leave goes back to the controls; leaving an edited prompt reruns.
func (md *Model) leave() tea.Cmd {
	edited := md.editors.Value(edPrompt) != md.settings.Prompt || md.editors.Value(edSystem) != md.settings.System
	md.setFocus(focusControls)
	if edited {
		return md.changed()
	}
	return nil
}

// SignalMsg asks the UI to quit at once, saving the session, because the
// process received a signal (SIGINT, SIGTERM or SIGHUP).
type SignalMsg struct{}

// WaitRunner cancels the background run (the program has returned: nothing
// shows it any more; Bubble Tea quits on SIGTERM without passing through
// Update) and waits up to d for it to end, so MLX is idle; it reports
// whether the run ended.
func (md *Model) WaitRunner(d time.Duration) bool {
	md.cancel()
	if md.runner == nil {
		return true
	}
	md.runner.Cancel()
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
	md.cancel()
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

// handleKey routes a key: the global keys first, then the focused
// context's.
func (md *Model) handleKey(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	g := md.keys.global
	if !key.Matches(msg, md.keys.controls.Export) {
		md.exportPending = false // replacing an export needs ctrl+e twice in a row
	}
	switch {
	case key.Matches(msg, g.Quit):
		return md.quit(130)
	case key.Matches(msg, g.Run):
		md.dirty = false
		return md, md.startRun()
	case key.Matches(msg, g.Save):
		return md, md.saveCmd("saved session " + md.sessionName())
	}
	switch md.focus {
	case focusPrompt, focusSystem:
		if key.Matches(msg, md.keys.editor.Back) {
			return md, md.leave()
		}
		return md, md.editors.Update(msg)
	case focusPositive, focusNegative:
		return md.vectorKey(msg)
	case focusPicker:
		cmd := md.picker.Update(msg)
		if !md.picker.IsOpen() {
			md.setFocus(focusControls)
		}
		return md, cmd
	case focusInspector:
		return md.inspectorKey(msg)
	case focusEntry:
		return md.entryKey(msg) // tuner.go
	}
	return md.controlsKey(msg)
}

func (md *Model) vectorKey(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	v := md.keys.vector
	switch {
	case key.Matches(msg, v.Switch):
		if md.focus == focusPositive {
			return md, md.setFocus(focusNegative)
		}
		return md, md.setFocus(focusPositive)
	case key.Matches(msg, v.Back):
		return md, md.setFocus(focusControls)
	case key.Matches(msg, v.Make):
		return md, md.makeVector()
	}
	return md, md.editors.Update(msg)
}

func (md *Model) inspectorKey(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	in := md.keys.inspector
	switch {
	case key.Matches(msg, in.Quit):
		return md.quit(0)
	case key.Matches(msg, in.Help):
		md.toggleHelp()
		return md, nil
	}
	md.lanes.Update(msg)
	md.clampScroll()
	if !md.lanes.inspect {
		md.setFocus(focusControls)
	}
	return md, nil
}

func (md *Model) toggleHelp() {
	md.help.ShowAll = !md.help.ShowAll
}

// controlsKey handles the default context's keys: the panel's (select and
// step), the lanes' (scroll) and the commands.
func (md *Model) controlsKey(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	if cmd, ok := md.tunerKey(msg); ok { // tuner.go
		return md, cmd
	}
	if st, ok := md.controls.Update(msg, &md.settings); ok {
		if st.c == nil {
			return md, nil
		}
		if !st.active {
			// Kept for when it matters; rerunning could not change the text.
			md.noteChange()
			md.status = fmt.Sprintf("%s %s has no effect while %s: no rerun", st.c.name, st.c.value(&md.settings), st.c.why)
			return md, nil
		}
		return md, md.changed()
	}
	if md.lanes.Update(msg) {
		md.clampScroll()
		return md, nil
	}
	if cmd, ok := md.compareKey(msg); ok {
		return md, cmd
	}
	c := md.keys.controls
	switch {
	case key.Matches(msg, c.Quit):
		return md.quit(0)
	case key.Matches(msg, c.Help):
		md.toggleHelp()
	case key.Matches(msg, c.Prompt):
		return md, md.setFocus(focusPrompt)
	case key.Matches(msg, c.System):
		return md, md.setFocus(focusSystem)
	case key.Matches(msg, c.MakeVector):
		return md, md.setFocus(focusPositive)
	case key.Matches(msg, c.Sweep):
		md.settings.Sweep = !md.settings.Sweep
		return md, md.changed()
	case key.Matches(msg, c.Chat):
		md.settings.Chat = !md.settings.Chat
		return md, md.changed()
	case key.Matches(msg, c.Theme):
		md.setPalette(themes.All[(md.palette+1)%len(themes.All)])
		md.themeFixed = true
	case key.Matches(msg, c.Inspect):
		md.setFocus(focusInspector)
	case key.Matches(msg, c.Calibrated):
		return md, md.calibrationCmd()
	case key.Matches(msg, c.Open):
		return md, listSessions
	case key.Matches(msg, c.Export):
		force := md.exportPending
		md.exportPending = false
		return md, md.exportCmd(force)
	}
	return md, nil
}

package tui

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/mlx-genkit/genkit/sessions"
	"github.com/mlx-genkit/genkit/themes"
)

// The tuning tools of the controls context: a typed value for the selected
// control (enter or =), a reset of one control or all of them to the
// defaults, undo and redo of setting changes, save-as and rename of the
// session, copying a pane (clipboard.go) and mouse capture on and off (so
// the terminal's own selection works).

// tunerKeys are the tuning tools' keys (in the controls context).
type tunerKeys struct {
	Edit, Reset, ResetAll, Undo, Redo, SaveAs, Rename, Copy, CopyPane, Mouse key.Binding
}

func newTunerKeys() tunerKeys {
	return tunerKeys{
		Edit:     bind("enter/=", "type a value", "enter", "="),
		Reset:    bind("r", "reset control", "r"),
		ResetAll: bind("R", "reset all controls", "R"),
		Undo:     bind("u", "undo", "u"),
		Redo:     bind("U", "redo", "U"),
		SaveAs:   bind("S", "save as", "S"),
		Rename:   bind("N", "rename session", "N"),
		Copy:     bind("Y", "copy pane", "Y"),
		CopyPane: bind("f", "pane to copy", "f"),
		Mouse:    bind("m", "mouse capture on/off", "m"),
	}
}

// entryKeys are the typed entry's keys (every other key types).
type entryKeys struct {
	Apply, Cancel key.Binding
}

func newEntryKeys() entryKeys {
	return entryKeys{
		Apply:  bind("enter", "apply", "enter"),
		Cancel: bind("esc", "cancel", "esc"),
	}
}

// entryPurpose is what an entry's text is for.
type entryPurpose int

const (
	entryValue  entryPurpose = iota // the selected control's value
	entrySaveAs                     // a session name to save a copy under
	entryRename                     // the session's new name
)

// entry is a one-line text entry: a control's value or a session name.
type entry struct {
	open    bool
	purpose entryPurpose
	control string // the control typed into (entryValue)
	input   textinput.Model
	// confirm is a name that is saved already: enter with it again
	// replaces that session (the replaced one is kept).
	confirm string
	err     string // why the last text was refused
}

// label is what the entry asks for.
func (e *entry) label() string {
	switch e.purpose {
	case entrySaveAs:
		return "save as"
	case entryRename:
		return "rename to"
	}
	return e.control
}

// View draws the entry on one line of w columns, its error (if any) after
// the text.
func (e *entry) View(w int, st themes.Styles) string {
	line := st.Selected.Render(e.label()+" = ") + e.input.View()
	if e.err != "" {
		line += "  " + st.Error.Render(e.err)
	}
	return ansi.Truncate(line, w, "…")
}

// historyLimit bounds the undo history.
const historyLimit = 100

// change is one undoable step: the settings before it.
type change struct {
	before Settings
}

// tuner holds the tools' state.
type tuner struct {
	entry entry
	// undo and redo are the settings before each change (newest last);
	// cur is the settings as of the last change noted.
	undo, redo []change
	cur        Settings
	curSet     bool
	lastFields uint64    // the fields the last noted change touched (changedFields)
	notedAt    time.Time // when the last change was noted
	restoring  bool      // an undo or redo is being applied: not a new change
	single     bool      // the change being made is a step of its own (typed, reset)
	copyPane   int       // the lane Y copies (0 base, 1 steered, ...) once f chose one
	copyChosen bool      // f chose a pane (else Y copies the steered lane)
	mouseOff   bool      // mouse capture off: the terminal selects text
}

// cloneSettings copies s deep enough that changing the copy's fields (the
// controls replace pointers, never write through them) leaves s alone.
func cloneSettings(s Settings) Settings {
	c := s
	cp := func(p *float64) *float64 {
		if p == nil {
			return nil
		}
		v := *p
		return &v
	}
	cpi := func(p *int) *int {
		if p == nil {
			return nil
		}
		v := *p
		return &v
	}
	c.Steering.Alpha, c.Steering.Layer = cp(s.Steering.Alpha), cpi(s.Steering.Layer)
	g := &c.Gen
	g.Temperature, g.TopP, g.MinP = cp(g.Temperature), cp(g.TopP), cp(g.MinP)
	g.RepetitionPenalty, g.FrequencyPenalty, g.PresencePenalty = cp(g.RepetitionPenalty), cp(g.FrequencyPenalty), cp(g.PresencePenalty)
	g.TopK, g.NoRepeatNgramSize, g.MaxNewTokens = cpi(g.TopK), cpi(g.NoRepeatNgramSize), cpi(g.MaxNewTokens)
	if g.Seed != nil {
		v := *g.Seed
		g.Seed = &v
	}
	if g.DoSample != nil {
		v := *g.DoSample
		g.DoSample = &v
	}
	return c
}

// sameSettings reports whether a and b are the same settings (the texts
// aside: they belong to the editors).
func sameSettings(a, b Settings) bool {
	if changedFields(a, b) != 0 {
		return false
	}
	a.Prompt, a.System, b.Prompt, b.System = "", "", "", ""
	return reflect.DeepEqual(a, b)
}

// changedFields is a bit per control field that differs between a and b:
// cheap enough for every key of a storm (the controls' shown values are
// not: some read the presets).
func changedFields(a, b Settings) uint64 {
	var m uint64
	bit := func(i int, differ bool) {
		if differ {
			m |= 1 << i
		}
	}
	pa, pb, ga, gb := a.Steering, b.Steering, a.Gen, b.Gen
	bit(0, !eqPtr(pa.Alpha, pb.Alpha))
	bit(1, !eqPtr(pa.Layer, pb.Layer))
	bit(2, pa.Preset != pb.Preset || pa.Vector != pb.Vector)
	bit(3, pa.Mode != pb.Mode)
	bit(4, pa.Scope != pb.Scope)
	bit(5, pa.Schedule != pb.Schedule)
	bit(6, pa.Method != pb.Method)
	bit(7, pa.Normalize != pb.Normalize || pa.FinalNorm != pb.FinalNorm)
	bit(8, !eqPtr(ga.DoSample, gb.DoSample))
	bit(9, !eqPtr(ga.Temperature, gb.Temperature))
	bit(10, !eqPtr(ga.TopK, gb.TopK))
	bit(11, !eqPtr(ga.TopP, gb.TopP))
	bit(12, !eqPtr(ga.MinP, gb.MinP))
	bit(13, !eqPtr(ga.RepetitionPenalty, gb.RepetitionPenalty))
	bit(14, !eqPtr(ga.NoRepeatNgramSize, gb.NoRepeatNgramSize))
	bit(15, !eqPtr(ga.FrequencyPenalty, gb.FrequencyPenalty))
	bit(16, !eqPtr(ga.PresencePenalty, gb.PresencePenalty))
	bit(17, !eqPtr(ga.Seed, gb.Seed))
	bit(18, !eqPtr(ga.MaxNewTokens, gb.MaxNewTokens))
	bit(19, a.SharedDraws != b.SharedDraws)
	bit(20, a.Chat != b.Chat)
	bit(21, a.Sweep != b.Sweep)
	return m
}

// eqPtr reports whether two optional values are equal (both unset, or
// both set to the same value).
func eqPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// diff names the controls whose shown value differs between a and b, with
// both values ("alpha 1 → 3"); toggles outside the list (chat, sweep) too.
func (md *Model) diff(a, b Settings) string {
	var out []string
	for i := range md.controls.list {
		c := &md.controls.list[i]
		if va, vb := c.value(&a), c.value(&b); va != vb {
			out = append(out, fmt.Sprintf("%s %s → %s", c.name, va, vb))
		}
	}
	if a.Chat != b.Chat {
		out = append(out, fmt.Sprintf("chat %v → %v", a.Chat, b.Chat))
	}
	if a.Sweep != b.Sweep {
		out = append(out, fmt.Sprintf("sweep %v → %v", a.Sweep, b.Sweep))
	}
	if len(out) == 0 {
		return "settings"
	}
	return strings.Join(out, ", ")
}

// changedAlone is changed for a change that is an undo step of its own
// (a typed value, a reset), never part of a burst.
func (md *Model) changedAlone() tea.Cmd {
	md.tuner.single = true
	defer func() { md.tuner.single = false }()
	return md.changed()
}

// noteChange records a setting change for undo: the settings before it go
// on the undo history (bounded) and the redo history is dropped. A burst of
// changes to the same controls (a held key, within the debounce delay)
// is one step.
func (md *Model) noteChange() {
	t := &md.tuner
	if !t.curSet {
		// The first change: the settings it started from are unknown
		// (nothing noted since the start); the UI notes them at load.
		t.cur, t.curSet = cloneSettings(md.settings), true
		return
	}
	if t.restoring || sameSettings(t.cur, md.settings) {
		t.cur = cloneSettings(md.settings)
		return
	}
	fields := changedFields(t.cur, md.settings)
	now := time.Now()
	burst := !t.single && len(t.undo) > 0 && fields == t.lastFields && fields != 0 && now.Sub(t.notedAt) < debounce
	t.notedAt = now
	if !burst {
		t.undo = append(t.undo, change{before: t.cur})
		if len(t.undo) > historyLimit {
			t.undo = t.undo[len(t.undo)-historyLimit:]
		}
	}
	t.redo = nil
	t.lastFields = fields
	if t.single {
		t.lastFields = 0 // nothing joins a typed value or a reset
	}
	t.cur = cloneSettings(md.settings)
}

// startHistory notes the settings the undo history starts from (the
// model's load, a session opened).
func (md *Model) startHistory() {
	md.tuner.cur, md.tuner.curSet = cloneSettings(md.settings), true
}

// restore applies settings from the history (undo or redo), keeping the
// editors' texts, and reruns.
func (md *Model) restore(s Settings, verb string) tea.Cmd {
	s = cloneSettings(s)
	s.Prompt, s.System = md.settings.Prompt, md.settings.System
	what := md.diff(md.settings, s)
	md.settings = s
	md.tuner.restoring = true
	cmd := md.changed()
	md.tuner.restoring = false
	md.tuner.lastFields = 0
	md.status = verb + ": " + what
	return cmd
}

// undo steps back one change.
func (md *Model) undo() tea.Cmd { return md.travel(&md.tuner.undo, &md.tuner.redo, "undo") }

// redo steps forward one undone change.
func (md *Model) redo() tea.Cmd { return md.travel(&md.tuner.redo, &md.tuner.undo, "redo") }

// travel restores the newest change of from and records the current
// settings on to (undo and redo are the same move in opposite directions).
func (md *Model) travel(from, to *[]change, verb string) tea.Cmd {
	if len(*from) == 0 {
		md.status = "nothing to " + verb
		return nil
	}
	c := (*from)[len(*from)-1]
	*from = (*from)[:len(*from)-1]
	*to = append(*to, change{before: cloneSettings(md.settings)})
	return md.restore(c.before, verb)
}

// tunerKey handles the tools' keys in the controls context; ok is false
// for other keys.
func (md *Model) tunerKey(msg tea.KeyPressMsg) (tea.Cmd, bool) {
	k := md.keys.controls.tunerKeys
	switch {
	case key.Matches(msg, k.Edit):
		return md.openValueEntry(), true
	case key.Matches(msg, k.Reset):
		c := md.controls.Selected()
		if c == nil {
			return nil, true
		}
		before := cloneSettings(md.settings)
		resetControl(c.name, &md.settings, DefaultSettings())
		if sameSettings(before, md.settings) {
			md.status = c.name + " is at its default already"
			return nil, true
		}
		cmd := md.changedAlone()
		md.status = "reset " + md.diff(before, md.settings)
		return cmd, true
	case key.Matches(msg, k.ResetAll):
		before := cloneSettings(md.settings)
		resetAll(&md.settings, DefaultSettings())
		if sameSettings(before, md.settings) {
			md.status = "every control is at its default already"
			return nil, true
		}
		cmd := md.changedAlone()
		md.status = "reset all: " + md.diff(before, md.settings) + " (u undoes)"
		return cmd, true
	case key.Matches(msg, k.Undo):
		return md.undo(), true
	case key.Matches(msg, k.Redo):
		return md.redo(), true
	case key.Matches(msg, k.SaveAs):
		return md.openNameEntry(entrySaveAs), true
	case key.Matches(msg, k.Rename):
		return md.openNameEntry(entryRename), true
	case key.Matches(msg, k.Copy):
		return md.copyCmd(), true
	case key.Matches(msg, k.CopyPane):
		md.nextCopyPane()
		return nil, true
	case key.Matches(msg, k.Mouse):
		md.tuner.mouseOff = !md.tuner.mouseOff
		if md.tuner.mouseOff {
			md.status = "mouse capture off: select text with the terminal (m turns it back on)"
		} else {
			md.status = "mouse capture on: the wheel scrolls, a click focuses"
		}
		return nil, true
	}
	return nil, false
}

// mouseMode is the view's mouse mode: cell motion, or none while capture
// is off (the terminal's own selection then works).
func (md *Model) mouseMode() tea.MouseMode {
	if md.tuner.mouseOff {
		return tea.MouseModeNone
	}
	return tea.MouseModeCellMotion
}

// newEntry makes the entry's input, holding value.
func (md *Model) newEntry(p entryPurpose, control, value string) tea.Cmd {
	ti := textinput.New()
	ti.Prompt = ""
	ti.CharLimit = 200
	if md.plain {
		ti.SetStyles(textinput.Styles{})
	}
	ti.SetValue(value)
	ti.CursorEnd()
	md.tuner.entry = entry{open: true, purpose: p, control: control, input: ti}
	md.controls.entry = &md.tuner.entry
	md.setFocus(focusEntry)
	return md.tuner.entry.input.Focus()
}

// openValueEntry opens the entry on the selected control with its value.
func (md *Model) openValueEntry() tea.Cmd {
	c := md.controls.Selected()
	if c == nil {
		return nil
	}
	if _, ok := typedControls[c.name]; !ok {
		md.status = c.name + " takes no typed value: ←/→ change it"
		return nil
	}
	v := c.value(&md.settings)
	switch {
	case c.name == "alpha" && md.settings.Steering.Alpha == nil, c.name == "layer" && md.settings.Steering.Layer == nil:
		v = "auto"
	}
	md.status = "type " + c.name + ": enter applies, esc cancels"
	return md.newEntry(entryValue, c.name, v)
}

// openNameEntry opens the entry for a session name.
func (md *Model) openNameEntry(p entryPurpose) tea.Cmd {
	md.status = "type the session's name: enter saves, esc cancels"
	if p == entryRename {
		md.status = fmt.Sprintf("rename session %s: enter renames, esc cancels", md.sessionName())
	}
	return md.newEntry(p, "", md.sessionName())
}

// closeEntry closes the entry and gives the keys back to the controls.
func (md *Model) closeEntry() {
	md.tuner.entry.open = false
	md.controls.entry = nil
	md.setFocus(focusControls)
}

// entryKey handles a key while the entry is open.
func (md *Model) entryKey(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	e := &md.tuner.entry
	k := md.keys.entry
	switch {
	case key.Matches(msg, k.Cancel):
		what := e.label()
		md.closeEntry()
		md.status = what + ": cancelled, nothing changed"
		return md, nil
	case key.Matches(msg, k.Apply):
		return md, md.applyEntry()
	}
	var cmd tea.Cmd
	e.input, cmd = e.input.Update(msg)
	return md, cmd
}

// applyEntry applies the entry's text: a control's value (refused with
// the reason, the entry kept open), or a session name (saved in the
// background; a name saved already asks for enter again).
func (md *Model) applyEntry() tea.Cmd {
	e := &md.tuner.entry
	text := e.input.Value()
	if e.purpose != entryValue {
		name := strings.TrimSpace(text)
		if err := sessions.CheckName(name); err != nil {
			e.err = err.Error()
			md.status = e.err
			return nil
		}
		replace := e.confirm == name
		purpose := e.purpose
		md.closeEntry()
		if purpose == entryRename {
			return md.renameCmd(md.sessionName(), name, replace)
		}
		return md.saveAsCmd(name, replace)
	}
	set := typedControls[e.control]
	next := cloneSettings(md.settings)
	if err := set(&next, text, md.m); err != nil {
		e.err = err.Error()
		md.status = e.err
		return nil
	}
	before := md.settings
	md.settings = next
	md.closeEntry()
	if sameSettings(before, next) {
		md.status = e.control + " unchanged"
		return nil
	}
	if i := md.controls.index(e.control); i >= 0 && !md.controls.list[i].isActive(&md.settings) {
		// Kept for when it matters; rerunning could not change the text.
		md.tuner.single = true
		md.noteChange()
		md.tuner.single = false
		md.status = md.diff(before, next) + ": no effect while " + md.controls.list[i].why + ", no rerun"
		return nil
	}
	cmd := md.changedAlone()
	md.status = md.diff(before, next)
	return cmd
}

// sessionNamedMsg reports a save-as or a rename.
type sessionNamedMsg struct {
	rename   bool
	from, to string
	path     string
	exists   bool // the name is saved already: enter again replaces it
	err      error
}

// saveAsCmd saves the current session under name in the background.
func (md *Model) saveAsCmd(name string, replace bool) tea.Cmd {
	if md.m == nil {
		return nil
	}
	ss := md.session()
	return func() tea.Msg {
		err := sessions.SaveAs(ss, name, replace)
		return namedResult(false, "", name, err)
	}
}

// renameCmd renames the session from to to in the background: the saved
// file moves, as it is (the next save, autosave or quit writes the current
// state under the new name); a session never saved is saved under it.
func (md *Model) renameCmd(from, to string, replace bool) tea.Cmd {
	if md.m == nil {
		return nil
	}
	ss := md.session()
	return func() tea.Msg {
		exists, err := sessions.Exists(from)
		switch {
		case err != nil:
		case exists:
			err = sessions.Rename(from, to, replace)
		default:
			err = sessions.SaveAs(ss, to, replace)
		}
		return namedResult(true, from, to, err)
	}
}

func namedResult(rename bool, from, to string, err error) sessionNamedMsg {
	msg := sessionNamedMsg{rename: rename, from: from, to: to}
	switch {
	case errors.Is(err, sessions.ErrExists):
		msg.exists = true
	case err != nil:
		msg.err = err
	default:
		if dir, derr := sessions.Dir(); derr == nil {
			msg.path = shortPath(filepath.Join(dir, to+".json"))
		}
	}
	return msg
}

// named takes a save-as or rename's result: the session goes on under its
// new name; a name saved already reopens the entry to confirm.
func (md *Model) named(msg sessionNamedMsg) tea.Cmd {
	switch {
	case msg.exists:
		p := entrySaveAs
		if msg.rename {
			p = entryRename
		}
		cmd := md.newEntry(p, "", msg.to)
		md.tuner.entry.confirm = msg.to
		md.tuner.entry.err = "a session named " + msg.to + " is saved already: enter again replaces it (the old one is kept in sessions/.replaced), esc keeps it"
		md.status = md.tuner.entry.err
		return cmd
	case msg.err != nil:
		md.err = msg.err
		md.status = "save failed (the session is still open under " + md.sessionName() + ")"
		return nil
	}
	md.opts.SessionName = msg.to
	if msg.rename {
		md.status = fmt.Sprintf("renamed session %s to %s: %s", msg.from, msg.to, msg.path)
	} else {
		md.status = fmt.Sprintf("saved as %s: %s (autosave goes there now)", msg.to, msg.path)
	}
	return nil
}

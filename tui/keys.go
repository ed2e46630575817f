package tui

import (
	"charm.land/bubbles/v2/key"
)

// The UI's keys, grouped by context: the global keys work everywhere (the
// text editors included); each focus has its own keymap on top of them, and
// the help line shows the focused context's keys, so it follows focus. Every
// key the UI handles is a binding in one of these maps, with help text (a
// test checks that the help of each context covers each of its keys).

// globalKeys work in every context.
type globalKeys struct {
	Run, Save, Quit key.Binding
}

// panelKeys move in the controls sidebar and step the controls
// (controlsPanel handles them).
type panelKeys struct {
	Up, Down, Inc, Dec, AlphaUp, AlphaDown key.Binding
}

// scrollKeys scroll the lanes (lanes handles them).
type scrollKeys struct {
	ScrollUp, ScrollDown key.Binding
}

// controlsKeys are the keys of the default context, the controls focused.
type controlsKeys struct {
	panelKeys
	scrollKeys
	compareKeys                                         // comparing runs (compare.go)
	tunerKeys                                           // typed values, reset, undo, save-as, copy (tuner.go)
	Prompt, System, MakeVector, Sweep, Chat, Calibrated key.Binding
	Open, Export, Theme, Inspect, Help, Quit            key.Binding
}

// editorKeys are the prompt and system prompt editors' (the textarea takes
// every other key).
type editorKeys struct {
	Back key.Binding
}

// vectorKeys are the keys of the two editors that make a vector from
// contrastive texts.
type vectorKeys struct {
	Switch, Make, Back key.Binding
}

// pickerKeys are the session picker's.
type pickerKeys struct {
	Up, Down, Open, Close key.Binding
}

// inspectorKeys are the token inspector's (alternatives and their
// probabilities at one step).
type inspectorKeys struct {
	scrollKeys
	Prev, Next, Close, Help, Quit key.Binding
}

// keyMap holds every context's keys.
type keyMap struct {
	global    globalKeys
	controls  controlsKeys
	editor    editorKeys
	vector    vectorKeys
	picker    pickerKeys
	inspector inspectorKeys
	entry     entryKeys // a typed value or session name (tuner.go)
}

func bind(help, desc string, keys ...string) key.Binding {
	return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
}

// pair is one help entry for two (or more) bindings, such as ↑/↓.
func pair(help, desc string, bs ...key.Binding) key.Binding {
	var keys []string
	for _, b := range bs {
		keys = append(keys, b.Keys()...)
	}
	return bind(help, desc, keys...)
}

func newKeyMap() keyMap {
	scroll := scrollKeys{
		ScrollUp:   bind("pgup", "scroll up", "pgup"),
		ScrollDown: bind("pgdn", "scroll down", "pgdown"),
	}
	help := bind("?", "all keys", "?")
	quit := bind("q", "quit", "q")
	return keyMap{
		global: globalKeys{
			Run:  bind("ctrl+r", "run", "ctrl+r"),
			Save: bind("ctrl+s", "save", "ctrl+s"),
			Quit: bind("ctrl+c", "quit", "ctrl+c"),
		},
		controls: controlsKeys{
			panelKeys: panelKeys{
				Up:        bind("↑/k", "previous control", "up", "k"),
				Down:      bind("↓/j", "next control", "down", "j"),
				Inc:       bind("→/l/+", "raise", "right", "l", "+"),
				Dec:       bind("←/h/-", "lower", "left", "h", "-"),
				AlphaUp:   bind("]", "alpha up", "]"),
				AlphaDown: bind("[", "alpha down", "["),
			},
			scrollKeys:  scroll,
			compareKeys: newCompareKeys(),
			tunerKeys:   newTunerKeys(),
			Prompt:      bind("tab", "prompt", "tab"),
			System:      bind("y", "system prompt", "y"),
			MakeVector:  bind("v", "make a vector", "v"),
			Sweep:       bind("w", "sweep", "w"),
			Chat:        bind("c", "chat template", "c"),
			Calibrated:  bind("K", "calibrated alpha/layer", "K"),
			Open:        bind("o", "open session", "o"),
			Export:      bind("ctrl+e", "export", "ctrl+e"),
			Theme:       bind("t", "theme", "t"),
			Inspect:     bind("i", "inspect tokens", "i"),
			Help:        help,
			Quit:        quit,
		},
		editor: editorKeys{
			Back: bind("tab/esc", "controls (reruns if edited)", "tab", "esc"),
		},
		vector: vectorKeys{
			Switch: bind("tab", "positive/negative", "tab"),
			Make:   bind("ctrl+g", "make the vector", "ctrl+g"),
			Back:   bind("esc", "controls", "esc"),
		},
		picker: pickerKeys{
			Up:    bind("↑/k", "previous", "up", "k"),
			Down:  bind("↓/j", "next", "down", "j"),
			Open:  bind("enter", "open", "enter"),
			Close: bind("esc/q", "close", "esc", "q"),
		},
		inspector: inspectorKeys{
			scrollKeys: scroll,
			Prev:       bind(",/←", "previous token", ",", "left", "h"),
			Next:       bind("./→", "next token", ".", "right", "l"),
			Close:      bind("esc/i", "close", "esc", "i"),
			Help:       help,
			Quit:       quit,
		},
		entry: newEntryKeys(),
	}
}

// contextHelp is one context's help (it implements help.KeyMap).
type contextHelp struct {
	short []key.Binding
	full  [][]key.Binding
}

// ShortHelp implements help.KeyMap.
func (c contextHelp) ShortHelp() []key.Binding { return c.short }

// FullHelp implements help.KeyMap.
func (c contextHelp) FullHelp() [][]key.Binding { return c.full }

// help is the help of the context f.
func (k keyMap) help(f focus) contextHelp {
	g := k.global
	switch f {
	case focusPrompt, focusSystem:
		e := k.editor
		return contextHelp{
			short: []key.Binding{e.Back, g.Run, g.Save, g.Quit},
			full:  [][]key.Binding{{e.Back}, {g.Run, g.Save, g.Quit}},
		}
	case focusPositive, focusNegative:
		v := k.vector
		return contextHelp{
			short: []key.Binding{v.Switch, v.Make, v.Back, g.Run, g.Save, g.Quit},
			full:  [][]key.Binding{{v.Switch, v.Make, v.Back}, {g.Run, g.Save, g.Quit}},
		}
	case focusPicker:
		p := k.picker
		move := pair("↑/↓", "choose", p.Up, p.Down)
		return contextHelp{
			short: []key.Binding{move, p.Open, p.Close, g.Quit},
			full:  [][]key.Binding{{p.Up, p.Down, p.Open, p.Close}, {g.Run, g.Save, g.Quit}},
		}
	case focusEntry:
		e := k.entry
		return contextHelp{
			short: []key.Binding{e.Apply, e.Cancel, g.Run, g.Save, g.Quit},
			full:  [][]key.Binding{{e.Apply, e.Cancel}, {g.Run, g.Save, g.Quit}},
		}
	case focusInspector:
		in := k.inspector
		move := pair(",/.", "token", in.Prev, in.Next)
		scroll := pair("pgup/pgdn", "scroll", in.ScrollUp, in.ScrollDown)
		return contextHelp{
			short: []key.Binding{move, scroll, in.Close, in.Help, in.Quit, g.Run, g.Save},
			full:  [][]key.Binding{{in.Prev, in.Next, scroll, in.Close}, {g.Run, g.Save, in.Help, in.Quit, g.Quit}},
		}
	}
	c := k.controls
	sel := pair("↑/↓", "select", c.Up, c.Down)
	change := pair("←/→", "change", c.Inc, c.Dec)
	alpha := pair("[/]", "alpha", c.AlphaDown, c.AlphaUp)
	return contextHelp{
		short: []key.Binding{c.Prompt, sel, change, alpha, c.Edit, c.Help, c.Quit, g.Run, g.Save},
		full: [][]key.Binding{
			{sel, change, alpha, c.Prompt, c.System, c.MakeVector, c.Calibrated},
			{c.Sweep, c.Chat, c.Inspect, pair("pgup/pgdn", "scroll", c.ScrollUp, c.ScrollDown), c.Open, c.Export, c.Theme},
			{g.Run, g.Save, c.Help, c.Quit, g.Quit},
			{c.Pin, pair("</>", "older/newer run", c.Older, c.Newer), c.LaneTab, c.SweepOver},
			{c.Edit, c.Reset, c.ResetAll, c.Undo, c.Redo, c.SaveAs, c.Rename, c.Copy, c.CopyPane, c.Mouse},
		},
	}
}

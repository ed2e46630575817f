package tui

import "charm.land/bubbles/v2/key"

// keyMap holds the UI's key bindings; help is generated from it.
type keyMap struct {
	Run, Focus, Up, Down, Inc, Dec, AlphaUp, AlphaDown, Sweep, Chat, System   key.Binding
	Save, Export, Theme, Help, Quit, ForceQuit, ScrollUp, ScrollDown, Inspect key.Binding
	Open, MakeVector, Calibrated                                              key.Binding
}

func newKeyMap() keyMap {
	return keyMap{
		Run:        key.NewBinding(key.WithKeys("ctrl+r"), key.WithHelp("ctrl+r", "run")),
		Focus:      key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "prompt/controls")),
		Up:         key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/↓", "select control")),
		Down:       key.NewBinding(key.WithKeys("down", "j")),
		Inc:        key.NewBinding(key.WithKeys("right", "l", "+"), key.WithHelp("←/→", "change")),
		Dec:        key.NewBinding(key.WithKeys("left", "h", "-")),
		AlphaUp:    key.NewBinding(key.WithKeys("]"), key.WithHelp("[/]", "alpha")),
		AlphaDown:  key.NewBinding(key.WithKeys("[")),
		Sweep:      key.NewBinding(key.WithKeys("w"), key.WithHelp("w", "sweep")),
		Chat:       key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "chat template")),
		System:     key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "system prompt")),
		Save:       key.NewBinding(key.WithKeys("ctrl+s"), key.WithHelp("ctrl+s", "save")),
		Export:     key.NewBinding(key.WithKeys("ctrl+e"), key.WithHelp("ctrl+e", "export")),
		Open:       key.NewBinding(key.WithKeys("o"), key.WithHelp("o", "open session")),
		MakeVector: key.NewBinding(key.WithKeys("v"), key.WithHelp("v", "make a vector (ctrl+g)")),
		Calibrated: key.NewBinding(key.WithKeys("K"), key.WithHelp("K", "calibrated alpha/layer")),
		Theme:      key.NewBinding(key.WithKeys("t"), key.WithHelp("t", "theme")),
		Inspect:    key.NewBinding(key.WithKeys("i"), key.WithHelp("i", "inspect")),
		Help:       key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:       key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit")),
		ForceQuit:  key.NewBinding(key.WithKeys("ctrl+c")),
		ScrollUp:   key.NewBinding(key.WithKeys("pgup"), key.WithHelp("pgup/pgdn", "scroll")),
		ScrollDown: key.NewBinding(key.WithKeys("pgdown")),
	}
}

// ShortHelp implements help.KeyMap.
func (k keyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Focus, k.Up, k.Inc, k.AlphaUp, k.Run, k.Save, k.Help, k.Quit}
}

// FullHelp implements help.KeyMap.
func (k keyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Focus, k.Up, k.Inc, k.AlphaUp, k.Run},
		{k.Sweep, k.Chat, k.System, k.MakeVector, k.Calibrated, k.Inspect, k.ScrollUp},
		{k.Save, k.Open, k.Export, k.Theme, k.Help, k.Quit},
	}
}

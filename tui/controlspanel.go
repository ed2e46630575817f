package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/mlx-genkit/genkit/themes"
)

// controlsPanel is the list of live controls: the sidebar on a wide
// terminal, a strip under the lanes on a narrow one. It moves the selection
// and steps the selected control (or alpha, from anywhere in the list).
//
// A control that has no effect under the other settings (sampling fields
// without do_sample, alpha under a ramp schedule, ...) is greyed out. It can
// still be stepped, so it is ready when it matters again, but the step
// starts no run (it could not change the text) and the root says why.
type controlsPanel struct {
	list     []control
	selected int
	keys     panelKeys
	// entry, while open, is drawn in the panel: a control's typed value on
	// its row, a session name in place of the title (tuner.go).
	entry *entry
}

// stepped reports a control the panel changed.
type stepped struct {
	c      *control
	active bool // whether the change has an effect
}

// Update handles the panel's keys with the settings s; it reports the
// control it stepped, if any (the caller reruns when it is active).
func (p *controlsPanel) Update(msg tea.Msg, s *Settings) (stepped, bool) {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok || len(p.list) == 0 {
		return stepped{}, false
	}
	switch {
	case key.Matches(k, p.keys.Up):
		p.selected = max(0, p.selected-1)
	case key.Matches(k, p.keys.Down):
		p.selected = min(len(p.list)-1, p.selected+1)
	case key.Matches(k, p.keys.Inc):
		return p.step(p.selected, s, 1), true
	case key.Matches(k, p.keys.Dec):
		return p.step(p.selected, s, -1), true
	case key.Matches(k, p.keys.AlphaUp):
		return p.step(p.index("alpha"), s, 1), true
	case key.Matches(k, p.keys.AlphaDown):
		return p.step(p.index("alpha"), s, -1), true
	}
	return stepped{}, false
}

func (p *controlsPanel) step(i int, s *Settings, dir int) stepped {
	if i < 0 {
		return stepped{}
	}
	c := &p.list[i]
	c.step(s, dir)
	return stepped{c: c, active: c.isActive(s)}
}

func (p *controlsPanel) index(name string) int {
	for i, c := range p.list {
		if c.name == name {
			return i
		}
	}
	return -1
}

// Selected is the selected control (nil before the model loads).
func (p *controlsPanel) Selected() *control {
	if p.selected < len(p.list) {
		return &p.list[p.selected]
	}
	return nil
}

// View draws the sidebar's content, w columns by h lines: a title, the
// controls (the selected one highlighted, inactive ones greyed) and, when
// the selected control has no effect, why.
func (p controlsPanel) View(w, h int, s *Settings, st themes.Styles, focused bool) string {
	title := st.Title.Render("controls")
	if !focused {
		title = st.Label.Render("controls")
	}
	e := p.entry
	if e != nil && !e.open {
		e = nil
	}
	if e != nil && e.purpose != entryValue {
		title = ansi.Truncate(st.Selected.Render(e.label()+": ")+e.input.View(), w, "…")
	}
	lines := []string{title}
	var note string
	if c := p.Selected(); c != nil && !c.isActive(s) {
		note = lipgloss.NewStyle().Width(w).Render(st.Inactive.Render("no effect: " + c.why))
	}
	if e != nil && e.err != "" {
		note = lipgloss.NewStyle().Width(w).Render(st.Error.Render(e.err))
	}
	rows := h - 1
	if note != "" {
		rows -= lipgloss.Height(note)
	}
	start := max(0, min(p.selected-rows/2, len(p.list)-rows))
	for i := start; i < len(p.list) && len(lines) < rows+1; i++ {
		c := &p.list[i]
		name, val := fmt.Sprintf("%-19s ", c.name), c.value(s)
		line := ansi.Truncate(name+val, w, "…")
		switch {
		case i == p.selected && e != nil && e.purpose == entryValue:
			line = ansi.Truncate(st.Selected.Render(name)+e.input.View(), w, "…")
		case i == p.selected && !c.isActive(s):
			line = st.SelectedInactive.Render(line)
		case i == p.selected:
			line = st.Selected.Render(line)
		case !c.isActive(s):
			line = st.Inactive.Render(line)
		default:
			line = st.Label.Render(name) + val
		}
		lines = append(lines, line)
	}
	if note != "" {
		for len(lines) < h-lipgloss.Height(note) {
			lines = append(lines, "")
		}
		lines = append(lines, note)
	}
	return strings.Join(lines, "\n")
}

// Strip is the narrow-terminal form: the selected control and its
// neighbours on one line, w columns wide.
func (p controlsPanel) Strip(w int, s *Settings, st themes.Styles) string {
	if len(p.list) == 0 {
		return ""
	}
	if e := p.entry; e != nil && e.open {
		// The entry alone (its error after it).
		return e.View(w, st)
	}
	var parts []string
	for i := max(0, p.selected-1); i < min(len(p.list), p.selected+3); i++ {
		c := &p.list[i]
		item := c.name + " " + c.value(s)
		switch {
		case i == p.selected && !c.isActive(s):
			item = st.SelectedInactive.Render(item)
		case i == p.selected:
			item = st.Selected.Render(item)
		case !c.isActive(s):
			item = st.Inactive.Render(item)
		default:
			item = st.Label.Render(item)
		}
		parts = append(parts, item)
	}
	return lipgloss.NewStyle().MaxWidth(w).Render("◂ " + strings.Join(parts, " │ ") + " ▸")
}

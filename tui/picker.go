package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/mlx-genkit/genkit/sessions"
	"github.com/mlx-genkit/genkit/themes"
)

// Messages of the session picker: the list to choose from, and the session
// chosen, read from disk (both by commands, never in Update).
type (
	sessionsMsg struct {
		list []sessions.Info
		err  error
	}
	sessionOpenedMsg struct {
		name string
		s    *sessions.Session
		err  error
	}
)

// listSessions reads the saved sessions for the picker.
func listSessions() tea.Msg {
	list, err := sessions.List()
	return sessionsMsg{list, err}
}

// loadSession reads the session name.
func loadSession(name string) tea.Cmd {
	return func() tea.Msg {
		s, err := sessions.Load(name)
		return sessionOpenedMsg{name: name, s: s, err: err}
	}
}

// sessionPicker lists the saved sessions (newest first); enter opens one
// (its settings replace the current ones and it becomes the autosave
// target), esc closes the list.
type sessionPicker struct {
	list   []sessions.Info // nil: closed
	picked int
	keys   pickerKeys
}

// Open shows the list.
func (p *sessionPicker) Open(list []sessions.Info) { p.list, p.picked = list, 0 }

// IsOpen reports whether the list shows.
func (p sessionPicker) IsOpen() bool { return p.list != nil }

// Update moves in the list; enter closes it and returns the command that
// reads the chosen session (a sessionOpenedMsg), esc closes it.
func (p *sessionPicker) Update(msg tea.Msg) tea.Cmd {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok || !p.IsOpen() {
		return nil
	}
	switch {
	case key.Matches(k, p.keys.Up):
		p.picked = max(0, p.picked-1)
	case key.Matches(k, p.keys.Down):
		p.picked = min(len(p.list)-1, p.picked+1)
	case key.Matches(k, p.keys.Open):
		info := p.list[p.picked]
		p.list = nil
		if info.Err != nil {
			return func() tea.Msg { return sessionOpenedMsg{name: info.Name, err: info.Err} }
		}
		return loadSession(info.Name)
	case key.Matches(k, p.keys.Close):
		p.list = nil
	}
	return nil
}

// View draws the list, w columns wide.
func (p sessionPicker) View(w int, st themes.Styles) string {
	if !p.IsOpen() {
		return ""
	}
	const rows = 8
	lines := []string{st.Title.Render("open a session")}
	start := max(0, min(p.picked-rows/2, len(p.list)-rows)) // keep the choice in view
	end := min(len(p.list), start+rows)
	if start > 0 {
		lines = append(lines, st.Muted.Render(fmt.Sprintf("  … %d more", start)))
	}
	for i := start; i < end; i++ {
		s := p.list[i]
		line := fmt.Sprintf("%-24s %s  %s", s.Name, s.Saved.Local().Format("2006-01-02 15:04"), s.Model)
		if s.Err != nil {
			line = fmt.Sprintf("%-24s unreadable: %v", s.Name, s.Err)
		}
		if i == p.picked {
			line = st.Selected.Render(line)
		}
		lines = append(lines, line)
	}
	if end < len(p.list) {
		lines = append(lines, st.Muted.Render(fmt.Sprintf("  … %d more", len(p.list)-end)))
	}
	return lipgloss.NewStyle().MaxWidth(w).Render(strings.Join(lines, "\n"))
}

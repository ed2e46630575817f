package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// promptHeight is the editor's height in lines of text.
func (md *Model) promptHeight() int {
	if md.height < 30 {
		return 2
	}
	return 4
}

func (md *Model) layout() {
	md.editors.SetSize(md.width-md.controlsWidth(), md.promptHeight())
	md.help.SetWidth(md.width)
}

func (md *Model) laneContext() laneContext {
	return laneContext{settings: &md.settings, running: md.running, styles: md.styles, plain: md.plain, termWidth: md.width,
		idle: md.notRunYet(), compare: &md.compare, tab: md.compare.tab}
}

// notRunYet: the model is loaded and nothing has run (the prompt waits
// for ctrl+r).
func (md *Model) notRunYet() bool {
	return md.m != nil && md.runID == 0 && !md.running && len(md.lanes.snap.Lanes) == 0
}

// header is the top row, w columns: the theme, the chat template, the mode,
// the system prompt (its start) and, while a past run shows, which.
func (md *Model) header(w int) string {
	st := md.styles
	chat := "off"
	if md.settings.Chat {
		chat = "on"
	}
	parts := []string{"theme " + st.Palette.Name, "chat " + chat, string(md.settings.Steering.Mode)}
	if md.settings.Sweep {
		over := md.compare.over
		if over == "" {
			over = "alpha"
		}
		parts = append(parts, "sweep: "+over)
	}
	sys := md.editors.Value(edSystem)
	if v := md.compare.viewing(); v != nil {
		parts = append(parts, fmt.Sprintf("viewing run %d (%d of %d)", v.id, md.compare.at+1, len(md.compare.history)))
		sys = v.settings.System // the run's own
	}
	if sys := oneLine(sys); sys != "" {
		parts = append(parts, "system: "+sys)
	} else {
		parts = append(parts, "no system prompt")
	}
	h := st.Title.Render("genkit") + st.Header.Render("  "+strings.Join(parts, " · "))
	return ansi.Truncate(h, w, "…")
}

func (md *Model) statusBar() string {
	state := "idle"
	switch {
	case md.m == nil && md.err == nil:
		state = "loading"
	case md.running:
		state = "running"
	}
	model := md.opts.ModelSpec
	if model == "" {
		model = "SmolLM2-135M-Instruct (default)"
	}
	mem := ""
	if md.memory.Peak > 0 {
		mem = fmt.Sprintf(" · peak %.0f MB", float64(md.memory.Peak)/1e6)
	}
	dev := md.device
	if dev == "" {
		dev = "?"
	}
	left := fmt.Sprintf(" %s · %s%s · %s · session %s ", model, dev, mem, state, md.sessionName())
	msg := md.status
	if md.notRunYet() && md.err == nil {
		msg = "ready · ctrl+r runs the prompt"
	}
	if md.progress != "" && md.running {
		msg = md.progress
	}
	bar := ansi.Truncate(left+"│ "+msg, md.width, "…")
	if pad := md.width - ansi.StringWidth(bar); pad > 0 {
		bar += strings.Repeat(" ", pad)
	}
	return md.styles.Status.Render(bar)
}

// helpView is the help of the focused context: one line of its main keys,
// or every key (?).
func (md *Model) helpView() string {
	h := md.keys.help(md.focus)
	md.themeHelp()
	var v string
	if md.help.ShowAll {
		v = md.fullHelp(h.FullHelp())
	} else {
		v = md.shortHelp(h.ShortHelp())
	}
	if ansi.StringWidth(v) > md.width {
		var hl []string
		for _, l := range strings.Split(v, "\n") {
			hl = append(hl, ansi.Truncate(l, md.width, "…"))
		}
		v = strings.Join(hl, "\n")
	}
	return v
}

// fullHelp draws every key: the help's columns side by side, wrapping to
// further rows of columns where the width ends.
func (md *Model) fullHelp(groups [][]key.Binding) string {
	const gap = "   "
	var rows []string
	var row []string
	width := 0
	for _, g := range groups {
		col := md.help.FullHelpView([][]key.Binding{g})
		w := lipgloss.Width(col)
		if len(row) > 0 && width+len(gap)+w > md.width {
			rows = append(rows, lipgloss.JoinHorizontal(lipgloss.Top, row...))
			row, width = nil, 0
		}
		if len(row) > 0 {
			row = append(row, gap)
			width += len(gap)
		}
		row = append(row, col)
		width += w
	}
	if len(row) > 0 {
		rows = append(rows, lipgloss.JoinHorizontal(lipgloss.Top, row...))
	}
	return strings.Join(rows, "\n")
}

// themeHelp takes the help line's styles from the theme.
func (md *Model) themeHelp() {
	st := md.styles
	md.help.Styles.ShortKey, md.help.Styles.FullKey = st.HelpKey, st.HelpKey
	md.help.Styles.ShortDesc, md.help.Styles.FullDesc = st.HelpDesc, st.HelpDesc
	md.help.Styles.ShortSeparator, md.help.Styles.FullSeparator = st.HelpSep, st.HelpSep
	md.help.Styles.Ellipsis = st.HelpSep
}

// themeEditors gives the text editors the theme's styles.
func (md *Model) themeEditors() {
	for i := range md.editors.ta {
		md.editors.ta[i].SetStyles(md.styles.Editor)
	}
}

// shortHelp draws the bindings that fit the width whole, then an ellipsis
// when some did not (help.Model can overrun by one item).
func (md *Model) shortHelp(bs []key.Binding) string {
	sep := ansi.StringWidth(md.help.ShortSeparator)
	total, n := 0, 0
	for i, b := range bs {
		w := ansi.StringWidth(b.Help().Key) + 1 + ansi.StringWidth(b.Help().Desc)
		if i > 0 {
			w += sep
		}
		room := md.width
		if i < len(bs)-1 {
			room -= 2 // the ellipsis
		}
		if total+w > room {
			break
		}
		total += w
		n++
	}
	v := md.help.ShortHelpView(bs[:n])
	if n < len(bs) {
		v += " " + md.help.Styles.Ellipsis.Render(md.help.Ellipsis)
	}
	return v
}

// View implements tea.Model.
func (md *Model) View() tea.View {
	v := tea.NewView(md.frameView())
	v.AltScreen = true
	v.MouseMode = md.mouseMode() // m turns capture off (tuner.go)
	v.WindowTitle = "genkit"
	return v
}

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

// controlsWidth is the sidebar width (0: controls go below the panes).
func (md *Model) controlsWidth() int {
	if md.width >= 120 {
		return 34
	}
	return 0
}

func (md *Model) layout() {
	md.editors.SetSize(md.width-md.controlsWidth(), md.promptHeight())
	md.help.SetWidth(md.width)
}

func (md *Model) laneContext() laneContext {
	return laneContext{settings: &md.settings, running: md.running, styles: md.styles, plain: md.plain, termWidth: md.width}
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
	var v string
	if md.help.ShowAll {
		v = md.help.FullHelpView(h.FullHelp())
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
	v := tea.NewView(md.render())
	v.AltScreen = true
	v.MouseMode = tea.MouseModeCellMotion
	v.WindowTitle = "genkit"
	return v
}

// render lays out the children: the title, the editor, the lanes and what
// goes under them (the controls strip on a narrow terminal, the insight
// line, the picker, the inspector, an error), the controls sidebar on a
// wide terminal, the status bar and the help.
func (md *Model) render() string {
	if md.width == 0 || md.height == 0 {
		return ""
	}
	if md.quitting {
		return ""
	}
	cw := md.controlsWidth()
	mainW := md.width - cw
	lc := md.laneContext()
	head := md.styles.Title.Render("genkit") + md.styles.Muted.Render(fmt.Sprintf("  chat %v · %s", md.settings.Chat, md.settings.Steering.Mode))
	editor := md.editors.View(mainW, md.styles)
	helpView := md.helpView()
	extra := []string{}
	if cw == 0 {
		extra = append(extra, md.controls.Strip(mainW, &md.settings, md.styles))
	}
	extra = append(extra, md.lanes.Insight(mainW, lc))
	if p := md.picker.View(mainW, md.styles); p != "" {
		extra = append(extra, p)
	}
	if ins := md.lanes.Inspector(mainW, md.styles); ins != "" {
		extra = append(extra, ins)
	}
	if md.err != nil {
		extra = append(extra, lipgloss.NewStyle().Width(mainW).Render(md.styles.Error.Render("error: "+md.err.Error())))
	}
	used := lipgloss.Height(head) + lipgloss.Height(editor) + lipgloss.Height(helpView) + 1
	for _, e := range extra {
		used += lipgloss.Height(e)
	}
	paneH := max(4, md.height-used)
	main := lipgloss.JoinVertical(lipgloss.Left, append([]string{head, editor, md.lanes.View(mainW, paneH, lc)}, extra...)...)
	if cw > 0 {
		box := md.styles.Pane
		if md.focus == focusControls {
			box = md.styles.PaneFocused
		}
		h := lipgloss.Height(main)
		side := box.Width(cw).Height(h).Render(md.controls.View(cw-4, h-2, &md.settings, md.styles, md.focus == focusControls))
		main = lipgloss.JoinHorizontal(lipgloss.Top, main, side)
	}
	out := lipgloss.JoinVertical(lipgloss.Left, main, md.statusBar(), helpView)
	// Never draw past the terminal.
	lines := strings.Split(out, "\n")
	if len(lines) > md.height {
		lines = lines[:md.height]
	}
	for i, l := range lines {
		if ansi.StringWidth(l) > md.width {
			lines[i] = ansi.Truncate(l, md.width, "…")
		}
	}
	return strings.Join(lines, "\n")
}

package tui

import (
	"fmt"
	"math"
	"strings"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// promptHeight is the editor's height in lines.
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
	w := md.width - 4
	if cw := md.controlsWidth(); cw > 0 {
		w -= cw
	}
	md.prompt.SetWidth(max(10, w))
	md.prompt.SetHeight(md.promptHeight())
	md.system.SetWidth(max(10, w))
	md.system.SetHeight(md.promptHeight())
	md.positive.SetWidth(max(10, w))
	md.positive.SetHeight(md.promptHeight())
	md.negative.SetWidth(max(10, w))
	md.negative.SetHeight(md.promptHeight())
	md.help.SetWidth(md.width)
}

var sparkRunes = []rune("▁▂▃▄▅▆▇█")

// sparkline draws values scaled to their maximum, the last width of them.
func sparkline(vals []float64, width int) string {
	if len(vals) > width {
		vals = vals[len(vals)-width:]
	}
	top := 0.0
	for _, v := range vals {
		if !math.IsInf(v, 0) {
			top = math.Max(top, v)
		}
	}
	var b strings.Builder
	for _, v := range vals {
		i := 0
		if top > 0 {
			i = int(math.Min(1, v/top) * float64(len(sparkRunes)-1))
		}
		if math.IsInf(v, 1) {
			i = len(sparkRunes) - 1
		}
		b.WriteRune(sparkRunes[i])
	}
	return b.String()
}

// laneText renders a lane, colouring steered tokens by projection.
func (md *Model) laneText(l Lane, steered bool, firstDiff int) string {
	if !steered || md.plain {
		var b strings.Builder
		for i, p := range l.Pieces {
			if i == firstDiff && firstDiff >= 0 {
				b.WriteString(md.styles.Diff.Render(p))
				continue
			}
			b.WriteString(p)
		}
		return b.String()
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range l.Proj {
		lo, hi = math.Min(lo, float64(p)), math.Max(hi, float64(p))
	}
	var b strings.Builder
	for i, p := range l.Pieces {
		t := 0.5
		if hi > lo && i < len(l.Proj) {
			t = (float64(l.Proj[i]) - lo) / (hi - lo)
		}
		st := md.styles.Projection(t, md.plain)
		if i == firstDiff {
			st = st.Underline(true)
		}
		b.WriteString(st.Render(p))
	}
	return b.String()
}

// pane draws one titled, wrapped, scrolled box of size w x h.
func (md *Model) pane(title, body string, w, h int, focused bool) string {
	inner := max(1, w-4) // border and padding
	wrapped := lipgloss.NewStyle().Width(inner).Render(body)
	lines := strings.Split(wrapped, "\n")
	avail := max(1, h-3)
	start := 0
	if len(lines) > avail {
		// Follow the end of a streaming text unless the user scrolled up.
		start = max(0, len(lines)-avail-md.scroll)
	}
	lines = lines[start:min(len(lines), start+avail)]
	for len(lines) < avail {
		lines = append(lines, "")
	}
	st := md.styles.Pane
	if focused {
		st = md.styles.PaneFocused
	}
	return st.Width(w).Render(title + "\n" + strings.Join(lines, "\n")) // Width counts the border
}

func (md *Model) laneTitle(i int) string {
	s := md.settings.Steering
	if i == 0 {
		return md.styles.BaseTitle.Render("base")
	}
	name := s.Preset
	if name == "" {
		name = "vector"
	}
	alpha := s.EffectiveAlpha() * md.settings.laneScales()[min(i, len(md.settings.laneScales())-1)]
	return md.styles.SteeredTitle.Render(fmt.Sprintf("steered · %s · α %s", name, fnum(alpha)))
}

func (md *Model) panes(w, h int) string {
	n := len(md.settings.laneScales())
	lanes := md.snap.Lanes
	fd := md.snap.FirstDiff()
	tps := md.snap.TokensPerSecond()
	var boxes []string
	vertical := md.width < 100 || n > 2 && md.width < 160
	bw, bh := w/n, h
	if vertical {
		bw, bh = w, max(4, h/n)
	}
	for i := 0; i < n; i++ {
		title := md.laneTitle(i)
		if tps > 0 {
			title += md.styles.Muted.Render(fmt.Sprintf("  %.1f tok/s", tps))
		}
		body := ""
		if i < len(lanes) {
			body = md.laneText(lanes[i], i > 0, fd)
		}
		if body == "" && md.running {
			body = md.styles.Muted.Render("…")
		}
		boxes = append(boxes, md.pane(title, body, bw, bh, false))
	}
	if vertical {
		return lipgloss.JoinVertical(lipgloss.Left, boxes...)
	}
	return lipgloss.JoinHorizontal(lipgloss.Top, boxes...)
}

func (md *Model) controlsView(w, h int) string {
	var lines []string
	title := md.styles.Title.Render("controls")
	if md.focus == focusControls {
		title += md.styles.Muted.Render(" (←/→ to change)")
	}
	lines = append(lines, title)
	start := max(0, min(md.selected-h/2, len(md.controls)-h+1))
	for i := start; i < len(md.controls) && len(lines) < h; i++ {
		c := md.controls[i]
		line := fmt.Sprintf("%-19s %s", c.name, c.value(&md.settings))
		if len(line) > w-2 {
			line = line[:w-2]
		}
		if i == md.selected {
			line = md.styles.Selected.Render(line)
		} else {
			line = md.styles.Label.Render(fmt.Sprintf("%-19s ", c.name)) + c.value(&md.settings)
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

// controlsStrip is the narrow-terminal form: the selected control and its
// neighbours on one line.
func (md *Model) controlsStrip(w int) string {
	if len(md.controls) == 0 {
		return ""
	}
	var parts []string
	for i := max(0, md.selected-1); i < min(len(md.controls), md.selected+3); i++ {
		c := md.controls[i]
		item := c.name + " " + c.value(&md.settings)
		if i == md.selected {
			item = md.styles.Selected.Render(item)
		} else {
			item = md.styles.Label.Render(item)
		}
		parts = append(parts, item)
	}
	return lipgloss.NewStyle().MaxWidth(w).Render("◂ " + strings.Join(parts, " │ ") + " ▸")
}

func (md *Model) insight(w int) string {
	var parts []string
	if fd := md.snap.FirstDiff(); fd >= 0 {
		parts = append(parts, fmt.Sprintf("lanes differ from token %d", fd))
	} else if len(md.snap.Lanes) > 1 && len(md.snap.Lanes[0].Tokens) > 0 {
		parts = append(parts, "lanes identical so far")
	}
	if len(md.snap.KL) > 0 {
		parts = append(parts, "KL "+sparkline(md.snap.KL, max(8, w/4)))
	}
	if md.snap.Layer > 0 || md.settings.Steering.Layer != nil {
		parts = append(parts, fmt.Sprintf("layer %d", md.snap.Layer))
	}
	if sep := md.separation(); sep != "" {
		parts = append(parts, "separation by layer "+sep)
	}
	return md.styles.Muted.Render(strings.Join(parts, "  ·  "))
}

// separation draws the preset's per-layer separation, the steered layer
// marked, to help choose the layer.
func (md *Model) separation() string {
	sep := md.snap.Separated
	if len(sep) == 0 {
		return ""
	}
	vals := make([]float64, len(sep))
	for l, v := range sep {
		if l >= 0 && l < len(vals) {
			vals[l] = math.Max(v, 0)
		}
	}
	line := []rune(sparkline(vals, len(vals)))
	if l := md.snap.Layer; l >= 0 && l < len(line) {
		return string(line[:l]) + "[" + string(line[l]) + "]" + string(line[l+1:])
	}
	return string(line)
}

func (md *Model) inspector(w int) string {
	if !md.inspect || len(md.snap.Lanes) < 2 {
		return ""
	}
	at := md.inspectAt
	var cols []string
	for i, l := range md.snap.Lanes[:2] {
		if at >= len(l.Top) {
			cols = append(cols, "")
			continue
		}
		var b strings.Builder
		name := "base"
		if i == 1 {
			name = "steered"
		}
		fmt.Fprintf(&b, "%s token %d %q:", name, at, l.Pieces[min(at, len(l.Pieces)-1)])
		for _, a := range l.Top[at] {
			fmt.Fprintf(&b, "  %q %.2f", a.Token, a.Prob)
		}
		cols = append(cols, b.String())
	}
	return lipgloss.NewStyle().MaxWidth(w).Render(strings.Join(cols, "\n") + md.styles.Muted.Render("  (,/. move)"))
}

// pickerView lists saved sessions (newest first).
func (md *Model) pickerView(w int) string {
	lines := []string{md.styles.Title.Render("open a session") + md.styles.Muted.Render("  ↑/↓ enter, esc closes")}
	for i, s := range md.picker {
		if i >= 8 {
			lines = append(lines, md.styles.Muted.Render(fmt.Sprintf("  … %d more", len(md.picker)-8)))
			break
		}
		line := fmt.Sprintf("%-24s %s  %s", s.Name, s.Saved.Local().Format("2006-01-02 15:04"), s.Model)
		if s.Err != nil {
			line = fmt.Sprintf("%-24s unreadable: %v", s.Name, s.Err)
		}
		if i == md.picked {
			line = md.styles.Selected.Render(line)
		}
		lines = append(lines, line)
	}
	return lipgloss.NewStyle().MaxWidth(w).Render(strings.Join(lines, "\n"))
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

// View implements tea.Model.
func (md *Model) View() tea.View {
	v := tea.NewView(md.render())
	v.AltScreen = true
	v.MouseMode = tea.MouseModeCellMotion
	v.WindowTitle = "genkit"
	return v
}

func (md *Model) render() string {
	if md.width == 0 || md.height == 0 {
		return ""
	}
	if md.quitting {
		return ""
	}
	cw := md.controlsWidth()
	mainW := md.width - cw
	head := md.styles.Title.Render("genkit") + md.styles.Muted.Render(fmt.Sprintf("  chat %v · %s", md.settings.Chat, md.settings.Steering.Mode))
	editor := md.prompt
	label := "prompt"
	switch md.focus {
	case focusSystem:
		editor, label = md.system, "system prompt"
	case focusPositive:
		editor, label = md.positive, "make a vector: positive texts (tab: negative, ctrl+g: make, esc: back)"
	case focusNegative:
		editor, label = md.negative, "make a vector: negative texts (tab: positive, ctrl+g: make, esc: back)"
	}
	editorBox := md.styles.Pane
	if md.focus != focusControls {
		editorBox = md.styles.PaneFocused
	}
	promptView := editorBox.Width(mainW).Render(md.styles.Label.Render(label) + "\n" + editor.View())
	helpView := md.help.View(md.keys)
	if ansi.StringWidth(helpView) > md.width {
		var hl []string
		for _, l := range strings.Split(helpView, "\n") {
			hl = append(hl, ansi.Truncate(l, md.width, "…"))
		}
		helpView = strings.Join(hl, "\n")
	}
	errView := ""
	if md.err != nil {
		errView = md.styles.Error.Render("error: " + md.err.Error())
	}
	extra := []string{}
	if cw == 0 {
		extra = append(extra, md.controlsStrip(mainW))
	}
	extra = append(extra, md.insight(mainW))
	if md.picker != nil {
		extra = append(extra, md.pickerView(mainW))
	}
	if ins := md.inspector(mainW); ins != "" {
		extra = append(extra, ins)
	}
	if errView != "" {
		extra = append(extra, lipgloss.NewStyle().Width(mainW).Render(errView))
	}
	used := lipgloss.Height(head) + lipgloss.Height(promptView) + lipgloss.Height(helpView) + 1
	for _, e := range extra {
		used += lipgloss.Height(e)
	}
	paneH := max(4, md.height-used)
	main := lipgloss.JoinVertical(lipgloss.Left, append([]string{head, promptView, md.panes(mainW, paneH)}, extra...)...)
	if cw > 0 {
		side := md.styles.Pane.Width(cw).Height(lipgloss.Height(main)).Render(md.controlsView(cw-4, lipgloss.Height(main)-2))
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

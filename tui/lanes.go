package tui

import (
	"fmt"
	"math"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/mlx-genkit/genkit/themes"
)

// lanes shows the current run: the base and steered panes (scrolled
// together), the insight line (where the lanes part, KL, the layer and the
// separation by layer) and the token inspector (the top alternatives of
// each lane at one step).
type lanes struct {
	snap    SnapshotMsg
	scroll  int  // lines up from the end
	inspect bool // the inspector shows (and has the focus)
	at      int  // the inspected step
	keys    inspectorKeys
}

// laneContext is what drawing the lanes takes from the root.
type laneContext struct {
	settings  *Settings
	running   bool
	styles    themes.Styles
	plain     bool
	termWidth int // the whole terminal's (the panes stack below 100)
}

// Reset clears the lanes for the run id.
func (l *lanes) Reset(id int) {
	l.snap = SnapshotMsg{RunID: id}
	l.scroll = 0
}

// SetInspect opens or closes the inspector.
func (l *lanes) SetInspect(on bool) { l.inspect = on }

// Update scrolls (wheel, page keys) and, while the inspector shows, moves
// it or closes it; it reports whether it used the message.
func (l *lanes) Update(msg tea.Msg) bool {
	switch msg := msg.(type) {
	case tea.MouseWheelMsg:
		if msg.Button == tea.MouseWheelUp {
			l.scroll += 3
		} else {
			l.scroll = max(0, l.scroll-3)
		}
		return true
	case tea.KeyPressMsg:
		switch {
		case key.Matches(msg, l.keys.ScrollUp):
			l.scroll += 5
		case key.Matches(msg, l.keys.ScrollDown):
			l.scroll = max(0, l.scroll-5)
		case !l.inspect:
			return false
		case key.Matches(msg, l.keys.Prev):
			l.at = max(0, l.at-1)
		case key.Matches(msg, l.keys.Next):
			l.at = min(l.at+1, max(0, l.steps()-1))
		case key.Matches(msg, l.keys.Close):
			l.inspect = false
		default:
			return false
		}
		return true
	}
	return false
}

// steps is the number of inspectable steps (of lanes 0 and 1).
func (l lanes) steps() int {
	n := 0
	for _, ln := range l.snap.Lanes[:min(2, len(l.snap.Lanes))] {
		n = max(n, len(ln.Top))
	}
	return n
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
func laneText(l Lane, steered bool, firstDiff int, c laneContext) string {
	if !steered || c.plain {
		var b strings.Builder
		for i, p := range l.Pieces {
			if i == firstDiff && firstDiff >= 0 {
				b.WriteString(c.styles.Diff.Render(p))
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
		st := c.styles.Projection(t, c.plain)
		if i == firstDiff {
			st = st.Underline(true)
		}
		b.WriteString(st.Render(p))
	}
	return b.String()
}

// pane draws one titled, wrapped, scrolled box of size w x h.
func (l lanes) pane(title, body string, w, h int, st themes.Styles) string {
	inner := max(1, w-4) // border and padding
	wrapped := lipgloss.NewStyle().Width(inner).Render(body)
	lines := strings.Split(wrapped, "\n")
	avail := max(1, h-3)
	start := 0
	if len(lines) > avail {
		// Follow the end of a streaming text unless the user scrolled up.
		start = max(0, len(lines)-avail-l.scroll)
	}
	lines = lines[start:min(len(lines), start+avail)]
	for len(lines) < avail {
		lines = append(lines, "")
	}
	return st.Pane.Width(w).Render(title + "\n" + strings.Join(lines, "\n")) // Width counts the border
}

func laneTitle(i int, c laneContext) string {
	s := c.settings.Steering
	if i == 0 {
		return c.styles.BaseTitle.Render("base")
	}
	name := s.Preset
	if name == "" {
		name = "vector"
	}
	scales := c.settings.laneScales()
	alpha := s.EffectiveAlpha() * scales[min(i, len(scales)-1)]
	return c.styles.SteeredTitle.Render(fmt.Sprintf("steered · %s · α %s", name, fnum(alpha)))
}

// View draws the panes in w x h: side by side, or stacked on a narrow
// terminal or for a sweep's many lanes.
func (l lanes) View(w, h int, c laneContext) string {
	n := len(c.settings.laneScales())
	fd := l.snap.FirstDiff()
	tps := l.snap.TokensPerSecond()
	var boxes []string
	vertical := c.termWidth < 100 || n > 2 && c.termWidth < 160
	bw, bh := w/n, h
	if vertical {
		bw, bh = w, max(4, h/n)
	}
	for i := 0; i < n; i++ {
		title := laneTitle(i, c)
		if tps > 0 {
			title += c.styles.Muted.Render(fmt.Sprintf("  %.1f tok/s", tps))
		}
		body := ""
		if i < len(l.snap.Lanes) {
			body = laneText(l.snap.Lanes[i], i > 0, fd, c)
		}
		if body == "" && c.running {
			body = c.styles.Muted.Render("…")
		}
		boxes = append(boxes, l.pane(title, body, bw, bh, c.styles))
	}
	if vertical {
		return lipgloss.JoinVertical(lipgloss.Left, boxes...)
	}
	return lipgloss.JoinHorizontal(lipgloss.Top, boxes...)
}

// Insight is the line under the panes: where the lanes part, the KL per
// step, the layer and the separation by layer.
func (l lanes) Insight(w int, c laneContext) string {
	var parts []string
	if fd := l.snap.FirstDiff(); fd >= 0 {
		parts = append(parts, fmt.Sprintf("lanes differ from token %d", fd))
	} else if len(l.snap.Lanes) > 1 && len(l.snap.Lanes[0].Tokens) > 0 {
		parts = append(parts, "lanes identical so far")
	}
	if len(l.snap.KL) > 0 {
		parts = append(parts, "KL "+sparkline(l.snap.KL, max(8, w/4)))
	}
	if l.snap.Layer > 0 || c.settings.Steering.Layer != nil {
		parts = append(parts, fmt.Sprintf("layer %d", l.snap.Layer))
	}
	if sep := l.separation(); sep != "" {
		parts = append(parts, "separation by layer "+sep)
	}
	return c.styles.Muted.Render(ansi.Truncate(strings.Join(parts, "  ·  "), w, "…"))
}

// separation draws the per-layer separation of the vector's texts, the
// steered layer marked, to help choose the layer.
func (l lanes) separation() string {
	sep := l.snap.Separated
	if len(sep) == 0 {
		return ""
	}
	vals := make([]float64, len(sep))
	for i, v := range sep {
		if i >= 0 && i < len(vals) {
			vals[i] = math.Max(v, 0)
		}
	}
	line := []rune(sparkline(vals, len(vals)))
	if at := l.snap.Layer; at >= 0 && at < len(line) {
		return string(line[:at]) + "[" + string(line[at]) + "]" + string(line[at+1:])
	}
	return string(line)
}

// Inspector draws the alternatives of the base and first steered lane at
// the inspected step, w columns wide ("" when closed).
func (l lanes) Inspector(w int, st themes.Styles) string {
	if !l.inspect {
		return ""
	}
	if len(l.snap.Lanes) < 2 || l.steps() == 0 {
		return st.Muted.Render("inspect: no tokens yet")
	}
	at := l.at
	var cols []string
	for i, ln := range l.snap.Lanes[:2] {
		if at >= len(ln.Top) {
			cols = append(cols, "")
			continue
		}
		var b strings.Builder
		name := "base"
		if i == 1 {
			name = "steered"
		}
		piece := ""
		if len(ln.Pieces) > 0 {
			piece = ln.Pieces[min(at, len(ln.Pieces)-1)]
		}
		fmt.Fprintf(&b, "%s token %d %q:", name, at, piece)
		for _, a := range ln.Top[at] {
			fmt.Fprintf(&b, "  %q %.2f", a.Token, a.Prob)
		}
		cols = append(cols, b.String())
	}
	return lipgloss.NewStyle().MaxWidth(w).Render(strings.Join(cols, "\n"))
}

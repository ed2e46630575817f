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

// lanes shows the current run (or a past one, or beside a pinned one; see
// compare.go): the base and steered panes (scrolled together, bounded by
// the text), the insight line (where the lanes part, KL and the separation
// by layer, the steered layer marked) and the token inspector (the top
// alternatives of each lane at one step, the token marked in its pane).
type lanes struct {
	snap   SnapshotMsg
	scroll int // lines up from the end
	// mostAt is how far the text could scroll when the scroll was last
	// set (-1: just now, from the end): while scrolled up, text that
	// streams in since then adds to the scroll, so the lines in view stay
	// put.
	mostAt  int
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
	termWidth int  // the whole terminal's (the panes stack below narrowMin)
	idle      bool // nothing has run yet: the base pane says how to run
	compare   *compareState
	tab       int // the lane tab shown (narrow mode)
}

// Reset clears the lanes for the run id.
func (l *lanes) Reset(id int) {
	l.snap = SnapshotMsg{RunID: id}
	l.scroll, l.mostAt = 0, 0
}

// SetInspect opens or closes the inspector.
func (l *lanes) SetInspect(on bool) { l.inspect = on }

// Update scrolls (wheel, page keys) and, while the inspector shows, moves
// it or closes it; it reports whether it used the message.
func (l *lanes) Update(msg tea.Msg) bool {
	if l.scroll == 0 {
		l.mostAt = -1 // a scroll from the end counts from the text now
	}
	switch msg := msg.(type) {
	case tea.MouseWheelMsg:
		// Up shows earlier text, down later text; the root bounds the
		// scroll by the text (clampScroll).
		switch msg.Button {
		case tea.MouseWheelUp:
			l.scroll += 3
		case tea.MouseWheelDown:
			l.scroll = max(0, l.scroll-3)
		default:
			return false
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

// laneText renders a lane, colouring steered tokens by projection and
// marking the inspected token (mark, -1: none).
func laneText(l Lane, steered bool, firstDiff, mark int, c laneContext) string {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range l.Proj {
		lo, hi = math.Min(lo, float64(p)), math.Max(hi, float64(p))
	}
	var b strings.Builder
	for i, p := range l.Pieces {
		if i == mark {
			if strings.TrimSpace(p) == "" {
				p = strings.ReplaceAll(p, "\n", "⏎\n")
				if p == "" || strings.TrimSpace(p) == "" && !strings.Contains(p, "⏎") {
					p = "·" + p
				}
			}
			b.WriteString(renderPiece(c.styles.Mark, p))
			continue
		}
		if !steered || c.plain {
			if i == firstDiff && firstDiff >= 0 {
				b.WriteString(renderPiece(c.styles.Diff, p))
				continue
			}
			b.WriteString(p)
			continue
		}
		t := 0.5
		if hi > lo && i < len(l.Proj) {
			t = (float64(l.Proj[i]) - lo) / (hi - lo)
		}
		st := c.styles.Projection(t, c.plain)
		if i == firstDiff {
			st = st.Underline(true)
		}
		b.WriteString(renderPiece(st, p))
	}
	return b.String()
}

// renderPiece styles a piece line by line (a style pads the lines of a
// multi-line string to one width, which would indent the text after a
// newline).
func renderPiece(st lipgloss.Style, p string) string {
	if !strings.Contains(p, "\n") {
		return st.Render(p)
	}
	parts := strings.Split(p, "\n")
	for i, q := range parts {
		if q != "" {
			parts[i] = st.Render(q)
		}
	}
	return strings.Join(parts, "\n")
}

// paneSpec is one pane to draw: its title, its short name (a tab), its
// text and the text up to the inspected token ("" when none).
type paneSpec struct {
	title, tab, body, upToMark string
	short                      string // the title where title does not fit ("": cut title)
}

// wrapLines wraps styled text to w columns.
func wrapLines(body string, w int) []string {
	if body == "" {
		return nil
	}
	lines := strings.Split(lipgloss.NewStyle().Width(w).Render(body), "\n")
	for len(lines) > 1 && strings.TrimSpace(ansi.Strip(lines[len(lines)-1])) == "" {
		lines = lines[:len(lines)-1] // the wrap's blank last line
	}
	return lines
}

// pane draws one titled, wrapped, scrolled box of exactly w x h (h >= 3);
// it returns how far the text can scroll.
func (l lanes) pane(p paneSpec, w, h int, st themes.Styles) (string, int) {
	inner := max(1, w-4) // border and padding
	lines := wrapLines(p.body, inner)
	avail := max(1, h-3)
	most := max(0, len(lines)-avail)
	// Follow the end of a streaming text unless scrolled up; keep the
	// inspected token in view.
	start := max(0, len(lines)-avail-min(l.scrolled(most), most))
	if p.upToMark != "" {
		at := len(wrapLines(p.upToMark, inner)) - 1
		if at < start || at >= start+avail {
			start = max(0, min(at-avail/2, len(lines)-avail))
		}
	}
	lines = fit(strings.Join(lines[start:min(len(lines), start+avail)], "\n"), inner, avail)
	if h <= 3 {
		lines = nil // room for the title only
	}
	title := p.title
	if p.short != "" && ansi.StringWidth(title) > inner {
		title = p.short
	}
	title = padCut(title, inner)
	content := title
	if len(lines) > 0 {
		content += "\n" + strings.Join(lines, "\n")
	}
	return strings.Join(fit(st.Pane.Width(w).Render(content), w, h), "\n"), most // Width counts the border
}

// scrolled is the scroll of a pane that can scroll most lines: while
// scrolled up, what streamed in since the scroll was set keeps the view
// where it was.
func (l lanes) scrolled(most int) int {
	if l.scroll == 0 || l.mostAt < 0 {
		return l.scroll
	}
	return max(0, l.scroll+most-l.mostAt)
}

// laneTitle is lane i's title (lane 0 the base) under settings s.
func laneTitle(i int, s *Settings, st themes.Styles) string {
	if i == 0 {
		return st.BaseTitle.Render("base")
	}
	name := s.Steering.Preset
	if name == "" {
		name = "vector"
	}
	scales := s.laneScales()
	alpha := s.Steering.EffectiveAlpha() * scales[min(i, len(scales)-1)]
	if len(scales) > 2 {
		// A sweep's narrow panes: what differs (alpha) first.
		return st.SteeredTitle.Render(fmt.Sprintf("α %s · %s", fnum(alpha), name))
	}
	return st.SteeredTitle.Render(fmt.Sprintf("steered · %s · α %s", name, fnum(alpha)))
}

// shortTitle is a steered lane's title for a narrow pane: what differs
// (alpha) first.
func shortTitle(i int, s *Settings, st themes.Styles) string {
	scales := s.laneScales()
	alpha := s.Steering.EffectiveAlpha() * scales[min(i, len(scales)-1)]
	return st.SteeredTitle.Render(fmt.Sprintf("α %s · %s", fnum(alpha), presetName(s)))
}

// presetName is the steering's preset, or "vector" for a vector file.
func presetName(s *Settings) string {
	if s.Steering.Preset == "" {
		return "vector"
	}
	return s.Steering.Preset
}

// shown is the run the lanes show: a past one being viewed, else the live
// one, with its settings.
func (l lanes) shown(c laneContext) (SnapshotMsg, *Settings, bool) {
	if c.compare != nil {
		if v := c.compare.viewing(); v != nil {
			return v.snap, &v.settings, true
		}
	}
	return l.snap, c.settings, false
}

// specs are the panes to draw: the lanes of the run shown, then the pinned
// run's steered lane.
func (l lanes) specs(c laneContext) []paneSpec {
	snap, set, past := l.shown(c)
	n := len(set.laneScales())
	if past {
		n = max(2, len(snap.Lanes))
	}
	if len(snap.Labels) > 0 {
		n = len(snap.Labels) + 1
	}
	fd := snap.FirstDiff()
	tps := snap.TokensPerSecond()
	mark := -1
	if l.inspect && !past {
		mark = l.at
	}
	var out []paneSpec
	for i := 0; i < n; i++ {
		title := laneTitle(i, set, c.styles)
		if tps > 0 && i == 0 {
			title += c.styles.Muted.Render(fmt.Sprintf("  %.1f tok/s", tps))
		}
		tab := "base"
		if i > 0 {
			scales := set.laneScales()
			tab = "α " + fnum(set.Steering.EffectiveAlpha()*scales[min(i, len(scales)-1)])
		}
		p := paneSpec{title: title, tab: tab}
		if i > 0 {
			p.short = shortTitle(i, set, c.styles)
		}
		if i > 0 && i-1 < len(snap.Labels) {
			// A sweep over another control: the lane's value first.
			lb := snap.Labels[i-1]
			p.title = c.styles.SteeredTitle.Render(fmt.Sprintf("%s · %s · α %s", lb, presetName(set), fnum(set.Steering.EffectiveAlpha())))
			p.short, p.tab = c.styles.SteeredTitle.Render(lb), lb
		}
		if i < len(snap.Lanes) {
			ln := snap.Lanes[i]
			p.body = laneText(ln, i > 0, fd, mark, c)
			if mark >= 0 && mark < len(ln.Pieces) {
				up := ln
				up.Pieces = ln.Pieces[:mark+1]
				p.upToMark = laneText(up, i > 0, fd, mark, c)
			}
		}
		if p.body == "" {
			switch {
			case c.running:
				p.body = c.styles.Muted.Render("…")
			case c.idle && i == 0:
				p.body = c.styles.Muted.Render("ctrl+r runs the prompt")
			}
		}
		out = append(out, p)
	}
	if c.compare != nil && c.compare.pinned != nil {
		r := c.compare.pinned
		title := fmt.Sprintf("pinned run %d · %s", r.id, describe(&r.settings, r.snap))
		if r.settings.Prompt != c.settings.Prompt || r.settings.System != c.settings.System {
			title += " · another prompt"
		}
		short := fmt.Sprintf("pin %d · α %s · L%d · %s", r.id, fnum(r.settings.Steering.EffectiveAlpha()), r.snap.Layer, presetName(&r.settings))
		out = append(out, paneSpec{title: c.styles.PinnedTitle.Render(title), short: c.styles.PinnedTitle.Render(short),
			tab: fmt.Sprintf("pinned %d", r.id), body: r.steeredText()})
	}
	return out
}

// share is part i of total split in n (the first total%n one more).
func share(total, n, i int) int {
	s := total / n
	if i < total%n {
		s++
	}
	return s
}

// View draws the panes in exactly w x h: side by side when each gets
// minColumnW columns (on a narrow terminal only when stacking them would
// leave them no text), else stacked when each gets minBoxRows lines, else
// as tabs (a tab row, the base and the tab's pane). It also returns how far
// the text can scroll.
func (l lanes) View(w, h int, c laneContext) (string, int) {
	specs := l.specs(c)
	n := len(specs)
	if h < 3 || n == 0 {
		return strings.Join(fit("", w, max(0, h)), "\n"), 0
	}
	most := 0
	draw := func(p paneSpec, pw, ph int) string {
		s, m := l.pane(p, pw, ph, c.styles)
		most = max(most, m)
		return s
	}
	var boxes []string
	switch {
	case c.termWidth >= narrowMin && w/n >= minColumnW,
		h/n < minBoxRows && w/n >= minColumnW && h >= 3:
		// Side by side: on a wide terminal, or where stacked boxes would
		// hold no text and the columns fit.
		for i, p := range specs {
			boxes = append(boxes, draw(p, share(w, n, i), h))
		}
		return lipgloss.JoinHorizontal(lipgloss.Top, boxes...), most
	case h/n >= minBoxRows:
		for i, p := range specs {
			boxes = append(boxes, draw(p, w, share(h, n, i)))
		}
		return lipgloss.JoinVertical(lipgloss.Left, boxes...), most
	}
	// Tabs: the base and the tab's pane, or the tab's pane alone when two
	// boxes do not fit.
	both := (h-1)/2 >= 4
	first := 1
	if !both {
		first = 0
	}
	tabs := specs[first:]
	if len(tabs) == 0 {
		tabs, first = specs, 0
	}
	sel := c.tab % len(tabs)
	var row []string
	for i, p := range tabs {
		if i == sel {
			row = append(row, c.styles.TabActive.Render(p.tab))
		} else {
			row = append(row, c.styles.Tab.Render(p.tab))
		}
	}
	tabRow := padCut(strings.Join(row, c.styles.Tab.Render(" │ "))+c.styles.Muted.Render("  (L: next)"), w)
	if !both {
		return tabRow + "\n" + draw(tabs[sel], w, h-1), most
	}
	top := (h - 1) / 2
	return lipgloss.JoinVertical(lipgloss.Left, tabRow, draw(specs[0], w, top), draw(tabs[sel], w, h-1-top)), most
}

// Insight is the line under the panes: where the lanes part, the KL per
// step and the separation by layer (the steered layer in brackets; its
// number shows once, in the controls).
func (l lanes) Insight(w int, c laneContext) string {
	snap, _, _ := l.shown(c)
	var parts []string
	if fd := snap.FirstDiff(); fd >= 0 {
		parts = append(parts, fmt.Sprintf("lanes differ from token %d", fd))
	} else if len(snap.Lanes) > 1 && len(snap.Lanes[0].Tokens) > 0 {
		parts = append(parts, "lanes identical so far")
	}
	if len(snap.KL) > 0 {
		parts = append(parts, "KL "+sparkline(snap.KL, max(8, w/4)))
	}
	// The layer itself shows once, in the controls ("auto (15)"); the
	// separation marks it [ ].
	if sep := separation(snap); sep != "" {
		parts = append(parts, "separation by layer "+sep)
	}
	return c.styles.Muted.Render(ansi.Truncate(strings.Join(parts, "  ·  "), w, "…"))
}

// separation draws the per-layer separation of the vector's texts, the
// steered layer marked, to help choose the layer.
func separation(snap SnapshotMsg) string {
	sep := snap.Separated
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
	if at := snap.Layer; at >= 0 && at < len(line) {
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

package tui

import (
	"strings"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// The frame. Every size from 80x24 up draws exactly the terminal's lines,
// none wider than the terminal:
//
//	header                        (one row, the whole width)
//	editor            │ controls  (the sidebar from sidebarMin columns)
//	lanes             │
//	under the lanes   │           (strip, insight, warnings, picker, ...)
//	status                        (one row)
//	help                          (one row; ? every key, the lanes shrinking)
//
// Each row is cut inside its own column with an ellipsis. The lanes take
// what the fixed rows leave; what goes under them is budgeted so the lanes
// keep at least minLaneRows. Below narrowMin columns the panes stack, and
// when stacked panes would show less than two lines of text each they
// become tabs (the base and one other pane, L picks which).

const (
	narrowMin   = 100 // below: the narrow mode (panes stacked or tabbed)
	sidebarMin  = 120 // from here: the controls sidebar
	sidebarCols = 40  // the sidebar's width, its border included
	minLaneRows = 9   // the lanes' least height: a tab row and two boxes
	minBoxRows  = 5   // a box with two lines of text
	minColumnW  = 24  // the narrowest pane side by side
	// minHelpLaneRows are the lanes' least height while ? shows every key
	// or the session picker is open.
	minHelpLaneRows = 4
)

// controlsWidth is the sidebar width (0: the controls are a strip under the
// panes).
func (md *Model) controlsWidth() int {
	if md.width >= sidebarMin {
		return sidebarCols
	}
	return 0
}

// fit cuts s into exactly h lines (h < 0: as many as it has), each cut to
// w columns with an ellipsis and padded to w.
func fit(s string, w, h int) []string {
	var lines []string
	if s != "" {
		lines = strings.Split(s, "\n")
	}
	if h >= 0 {
		if len(lines) > h {
			lines = lines[:h]
		}
		for len(lines) < h {
			lines = append(lines, "")
		}
	}
	for i, l := range lines {
		lines[i] = padCut(l, w)
	}
	return lines
}

// padCut cuts a line to w columns (with an ellipsis) and pads it to w.
func padCut(l string, w int) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(l) > w {
		l = ansi.Truncate(l, w, "…")
	}
	if pad := w - ansi.StringWidth(l); pad > 0 {
		l += strings.Repeat(" ", pad)
	}
	return l
}

// underBlock is one block under the lanes; budget order is prio (lower
// first), drawing order is the slice's.
type underBlock struct {
	lines []string
	prio  int
}

// frame is the laid-out screen before it is joined.
type frame struct {
	head        string
	editor      []string
	under       []string // under the lanes, already cut to the budget
	lanesH      int
	status      string
	help        []string
	side, mainW int // sidebar width (0: none) and the main column's
}

// layoutFrame measures and budgets the rows for the terminal's size.
func (md *Model) layoutFrame() frame {
	W, H := md.width, md.height
	f := frame{side: md.controlsWidth()}
	f.mainW = W - f.side
	f.head = md.header(W)
	f.status = md.statusBar()
	f.editor = fit(md.editors.View(f.mainW, md.styles), f.mainW, -1)
	// The help: one line, or (?) every key as far as the lanes' least
	// height allows (the last line says when some did not fit).
	help := fit(md.helpView(), W, -1)
	least := minLaneRows
	if md.help.ShowAll || md.picker.IsOpen() {
		least = minHelpLaneRows // the keys or the sessions asked for come first
	}
	room := H - 2 - len(f.editor) - least
	helpH := max(1, min(len(help), room))
	f.help = help[:min(helpH, len(help))]
	if len(f.help) < len(help) {
		f.help[len(f.help)-1] = padCut(md.styles.HelpSep.Render("… more keys than rows: a taller terminal shows them"), W)
	}
	mid := H - 2 - len(f.editor) - len(f.help)
	// Under the lanes, in priority order, within what the lanes spare.
	budget := max(0, mid-least)
	blocks := md.underBlocks(f.mainW)
	take := make([]int, len(blocks))
	for prio := 0; prio < 10; prio++ {
		for i, b := range blocks {
			if b.prio == prio {
				take[i] = min(len(b.lines), budget)
				budget -= take[i]
			}
		}
	}
	for i, b := range blocks {
		f.under = append(f.under, b.lines[:take[i]]...)
	}
	f.lanesH = max(0, mid-len(f.under))
	return f
}

// underBlocks are the blocks under the lanes, each line cut to w: the
// controls strip (no sidebar), the insight line, the warnings, the session
// picker, the token inspector and an error.
func (md *Model) underBlocks(w int) []underBlock {
	lc := md.laneContext()
	var bs []underBlock
	add := func(s string, prio int) {
		if s != "" {
			bs = append(bs, underBlock{fit(s, w, -1), prio})
		}
	}
	if md.controlsWidth() == 0 {
		// Drawn unbounded, then cut here with an ellipsis.
		add(md.controls.Strip(1<<16, &md.settings, md.styles), 1)
	}
	add(md.lanes.Insight(w, lc), 3)
	add(md.warningsView(w), 2)
	add(md.picker.View(w, md.styles), 0)
	add(md.lanes.Inspector(w, md.styles), 0)
	if md.err != nil {
		e := lipgloss.NewStyle().Width(w).Render(md.styles.Error.Render("error: " + md.err.Error()))
		if ls := strings.Split(e, "\n"); len(ls) > 3 {
			e = strings.Join(ls[:3], "\n")
		}
		add(e, 0)
	}
	return bs
}

// render draws the frame: exactly the terminal's height, no line wider than
// it.
func (md *Model) render() string {
	if md.width == 0 || md.height == 0 || md.quitting {
		return ""
	}
	f := md.layoutFrame()
	lanesView, _ := md.lanes.View(f.mainW, f.lanesH, md.laneContext())
	main := append(append(append([]string{}, f.editor...), fit(lanesView, f.mainW, f.lanesH)...), f.under...)
	rows := []string{padCut(f.head, md.width)}
	if f.side > 0 {
		box := md.styles.Pane
		if md.focus == focusControls {
			box = md.styles.PaneFocused
		}
		h := len(main)
		inner := sidebarCols - 4
		content := strings.Join(fit(md.controls.View(inner, max(1, h-2), &md.settings, md.styles, md.focus == focusControls), inner, max(1, h-2)), "\n")
		side := fit(box.Width(f.side).Render(content), f.side, h)
		for i := range main {
			rows = append(rows, main[i]+side[i])
		}
	} else {
		rows = append(rows, main...)
	}
	rows = append(rows, padCut(f.status, md.width))
	rows = append(rows, fit(strings.Join(f.help, "\n"), md.width, -1)...)
	// Exactly the terminal: never more lines or wider ones (a last guard).
	return strings.Join(fit(strings.Join(rows, "\n"), md.width, md.height), "\n")
}

// clampScroll bounds the lanes' scroll by the text the panes hold now (so
// scrolling past either end stops there and the way back is immediate),
// counting what streamed in since the last scroll (lanes.scrolled).
func (md *Model) clampScroll() {
	if md.width == 0 || md.height == 0 {
		md.lanes.scroll = max(0, md.lanes.scroll)
		return
	}
	f := md.layoutFrame()
	_, most := md.lanes.View(f.mainW, f.lanesH, md.laneContext())
	md.lanes.scroll = max(0, min(md.lanes.scrolled(most), most))
	md.lanes.mostAt = most
}

package tui

import (
	"time"

	tea "charm.land/bubbletea/v2"
)

// Frames and the key storm. Bubble Tea calls View after every message, but
// its renderer draws at most 60 frames a second: a frame drawn between two
// of its flushes is thrown away. A full frame costs milliseconds (lipgloss
// measures and joins every line), so under a storm of keys (a held ] or a
// paste) drawing one per key made the UI drain about 150 keys a second. View
// therefore draws a frame only when the frame gap has passed since the last
// one was drawn, and otherwise returns the last one; when it skips, a
// frameMsg tick is pending so the state after the last key is always drawn.
// The gap is frameInterval, or the last frame's own cost when drawing took
// longer (a slow machine, a five-lane sweep on a big terminal, the race
// detector): drawing then takes at most half the time and keys still drain.
// The settings change at once on every key (cheap), and one debounced run
// follows the last change (changed).

// frameInterval is the shortest time between two drawn frames (the
// renderer's 60 frames a second).
const frameInterval = time.Second / 60

// frameMsg asks for a frame after View skipped one.
type frameMsg struct{}

// frameCache is the last drawn frame.
type frameCache struct {
	view    string
	at      time.Time     // when it was drawn (the drawing's end); zero: never
	cost    time.Duration // how long drawing it took
	pending bool          // a frameMsg is on its way
}

// gap is the least time between the end of one drawn frame and the next.
func (f *frameCache) gap() time.Duration { return max(frameInterval, f.cost) }

// frameView is View's content: a fresh frame, or the last one when it was
// drawn less than the frame gap ago (a frameMsg then follows; see
// frameTick).
func (md *Model) frameView() string {
	start := time.Now()
	if !md.frame.at.IsZero() && start.Sub(md.frame.at) < md.frame.gap() {
		return md.frame.view
	}
	md.frame.view = md.render()
	md.frame.at = time.Now()
	md.frame.cost = md.frame.at.Sub(start)
	return md.frame.view
}

// frameTick is the command that redraws once the frame gap has passed when
// the View after this message will skip its frame (one tick pending at a
// time).
func (md *Model) frameTick() tea.Cmd {
	if md.frame.pending || md.frame.at.IsZero() || time.Since(md.frame.at) >= md.frame.gap() {
		return nil
	}
	md.frame.pending = true
	return tea.Tick(md.frame.gap(), func(time.Time) tea.Msg { return frameMsg{} })
}

// Update implements tea.Model: update handles the message (an entry left
// open by a focus change closes), then a frame is scheduled if the View
// that follows will skip one.
func (md *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if _, ok := msg.(frameMsg); ok {
		md.frame.pending = false
		// The View that follows draws, unless a frame was drawn since the
		// tick was set: then another tick.
		return md, md.frameTick()
	}
	_, cmd := md.update(msg)
	if md.tuner.entry.open && md.focus != focusEntry {
		// The focus moved away (a click): the entry closes unapplied.
		md.tuner.entry.open, md.controls.entry = false, nil
	}
	if f := md.frameTick(); f != nil {
		return md, tea.Batch(cmd, f)
	}
	return md, cmd
}

// debounceTick delivers a debounceMsg for generation gen after d.
func debounceTick(d time.Duration, gen int) tea.Cmd {
	return tea.Tick(max(d, time.Millisecond), func(time.Time) tea.Msg { return debounceMsg{gen} })
}

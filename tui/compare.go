package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// Comparing runs. Every finished run is kept in a history (its prompt,
// settings and texts); < and > step through it (the lanes then show that
// run, the header says which, and > past the newest goes back to the live
// run). p pins the run on screen: it stays as a pane beside the live lanes
// while the settings change, until p again unpins it.

// maxHistory is how many finished runs the history keeps.
const maxHistory = 50

// compareKeys are the keys for comparing runs (in the controls' context).
type compareKeys struct {
	Pin, Older, Newer, LaneTab, SweepOver key.Binding
}

func newCompareKeys() compareKeys {
	return compareKeys{
		Pin:     bind("p", "pin/unpin run", "p"),
		Older:   bind("<", "older run", "<"),
		Newer:   bind(">", "newer run", ">"),
		LaneTab: bind("L", "next lane tab", "L"),
		// SweepOver sweeps the selected control (sweep.go).
		SweepOver: bind("W", "sweep the selected control", "W"),
	}
}

// runRecord is one finished run: what it ran with and what it wrote.
type runRecord struct {
	id       int
	settings Settings
	snap     SnapshotMsg
	warnings []string // where steering broke the text (warnings.go)
}

// steeredText is the record's first steered lane's text.
func (r *runRecord) steeredText() string {
	if len(r.snap.Lanes) < 2 {
		return ""
	}
	return r.snap.Lanes[1].Text()
}

// compareState holds the history, the pinned run and the lane tab.
type compareState struct {
	keys       compareKeys
	startedID  int
	startedSet Settings
	history    []runRecord // oldest first
	at         int         // the history entry shown; -1: the live run
	pinned     *runRecord
	tab        int // narrow mode: the pane shown beside the base
	// over is the control a sweep varies ("": alpha; sweep.go).
	over string
}

func newCompareState() compareState { return compareState{keys: newCompareKeys(), at: -1} }

// started notes the settings a run starts with.
func (c *compareState) started(id int, s Settings) {
	c.startedID, c.startedSet = id, s
	c.at = -1 // a new run shows live
}

// finished records a finished run (not a cancelled or failed one).
func (c *compareState) finished(msg SnapshotMsg) {
	if !msg.Done || msg.Err != nil || msg.Finished == "cancelled" || msg.RunID != c.startedID || len(msg.Lanes) == 0 {
		return
	}
	r := runRecord{id: msg.RunID, settings: c.startedSet, snap: kept(msg)}
	r.warnings = steeringWarnings(msg, &r.settings)
	c.history = append(c.history, r)
	if len(c.history) > maxHistory {
		c.history = c.history[len(c.history)-maxHistory:]
		if c.at >= 0 {
			c.at = max(0, c.at-1)
		}
	}
}

// latest is the newest finished run (nil: none).
func (c *compareState) latest() *runRecord {
	if len(c.history) == 0 {
		return nil
	}
	return &c.history[len(c.history)-1]
}

// kept is a snapshot as the history keeps it: without the alternatives of
// each token (the inspector's, of the live run only), which would make 50
// long runs weigh hundreds of megabytes.
func kept(s SnapshotMsg) SnapshotMsg {
	s.Lanes = append([]Lane(nil), s.Lanes...)
	for i := range s.Lanes {
		s.Lanes[i].Top = nil
	}
	return s
}

// viewing is the past run shown instead of the live one (nil: live).
func (c *compareState) viewing() *runRecord {
	if c.at < 0 || c.at >= len(c.history) {
		return nil
	}
	return &c.history[c.at]
}

// compareKey handles the compare keys (and W, the sweep over the selected
// control); it reports whether it used the key.
func (md *Model) compareKey(msg tea.KeyPressMsg) (tea.Cmd, bool) {
	if key.Matches(msg, md.compare.keys.SweepOver) {
		return md.sweepSelected(), true
	}
	status, ok := md.compare.Update(msg, md.lanes.snap, md.settings)
	if ok && status != "" {
		md.status = status
	}
	return nil, ok
}

// Update handles the compare keys; it reports whether it used the key and
// a status line to show.
func (c *compareState) Update(msg tea.KeyPressMsg, live SnapshotMsg, liveSet Settings) (string, bool) {
	switch {
	case key.Matches(msg, c.keys.Pin):
		if c.pinned != nil {
			c.pinned = nil
			return "unpinned", true
		}
		if v := c.viewing(); v != nil {
			r := *v
			c.pinned = &r
			return fmt.Sprintf("pinned run %d beside the live lanes (p unpins)", r.id), true
		}
		if !live.Done || live.Err != nil || len(live.Lanes) < 2 {
			return "nothing to pin yet: pin a finished run", true
		}
		r := runRecord{id: live.RunID, settings: liveSet, snap: kept(live)}
		if live.RunID == c.startedID {
			r.settings = c.startedSet
		}
		c.pinned = &r
		return fmt.Sprintf("pinned run %d beside the live lanes (p unpins)", r.id), true
	case key.Matches(msg, c.keys.Older):
		if len(c.history) == 0 {
			return "no finished runs yet", true
		}
		if c.at < 0 {
			c.at = len(c.history) - 1
		} else {
			c.at = max(0, c.at-1)
		}
		return c.where(), true
	case key.Matches(msg, c.keys.Newer):
		if c.at < 0 {
			return "showing the live run", true
		}
		c.at++
		if c.at >= len(c.history) {
			c.at = -1
			return "back to the live run", true
		}
		return c.where(), true
	case key.Matches(msg, c.keys.LaneTab):
		c.tab++
		return "", true
	}
	return "", false
}

func (c *compareState) where() string {
	v := c.viewing()
	return fmt.Sprintf("run %d (%d of %d): %q · %s · > newer, p pins it", v.id, c.at+1, len(c.history), oneLine(v.settings.Prompt), describe(&v.settings, v.snap))
}

// oneLine is s on one line, its spaces collapsed.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// describe sums up a run's steering: alpha, the resolved layer, the
// vector and the mode.
func describe(s *Settings, snap SnapshotMsg) string {
	name := s.Steering.Preset
	if name == "" {
		name = "vector"
	}
	return fmt.Sprintf("α %s · layer %d · %s · %s", fnum(s.Steering.EffectiveAlpha()), snap.Layer, name, s.Steering.Mode)
}

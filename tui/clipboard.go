package tui

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	tea "charm.land/bubbletea/v2"
	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/internal/atomicfile"
)

// Copying a pane: Y sends the pane's text to the terminal's clipboard by
// OSC 52 (tea.SetClipboard; tmux, kitty, iTerm2, WezTerm, foot and others
// take it) and, as the fallback for terminals that ignore OSC 52, writes
// it to clipboard.txt under the data dir; the status line says both. f
// chooses the pane (base, steered, the sweep's lanes).

// clipboardFile is the fallback file's name under engine.DataDir.
const clipboardFile = "clipboard.txt"

// copiedMsg reports the fallback file written for a copy.
type copiedMsg struct {
	what  string
	chars int
	path  string
	err   error
}

// paneName names lane i of the shown run.
func (md *Model) paneName(i int) string {
	if i == 0 {
		return "base"
	}
	scales := md.settings.laneScales()
	if len(md.lanes.snap.Lanes) > 2 && i < len(scales) {
		return fmt.Sprintf("steered ×%g", scales[i])
	}
	return "steered"
}

// copyLane is the lane Y copies, within the lanes shown.
func (md *Model) copyLane() int {
	i := 1
	if md.tuner.copyChosen {
		i = md.tuner.copyPane
	}
	if n := len(md.lanes.snap.Lanes); n > 0 {
		i = min(i, n-1)
	}
	return i
}

// nextCopyPane moves the copy to the next pane.
func (md *Model) nextCopyPane() {
	n := max(2, len(md.lanes.snap.Lanes))
	md.tuner.copyPane, md.tuner.copyChosen = (md.copyLane()+1)%n, true
	md.status = "Y copies the " + md.paneName(md.tuner.copyPane) + " pane"
}

// copyCmd copies the chosen pane: OSC 52 and the fallback file.
func (md *Model) copyCmd() tea.Cmd {
	i := md.copyLane()
	if i >= len(md.lanes.snap.Lanes) {
		md.status = "nothing to copy yet: no run has shown text"
		return nil
	}
	text := md.lanes.snap.Lanes[i].Text()
	what := md.paneName(i)
	md.status = "copying the " + what + " pane…"
	return tea.Batch(tea.SetClipboard(text), writeClipboardFile(what, text))
}

// writeClipboardFile writes text to the fallback file (atomically).
func writeClipboardFile(what, text string) tea.Cmd {
	return func() tea.Msg {
		dir, err := engine.DataDir()
		if err != nil {
			return copiedMsg{err: fmt.Errorf("copy: %w", err)}
		}
		path := filepath.Join(dir, clipboardFile)
		if err := atomicfile.Write(path, []byte(text), 0o600); err != nil {
			return copiedMsg{err: fmt.Errorf("copy to %s: %w", path, err)}
		}
		return copiedMsg{what: what, chars: len([]rune(text)), path: shortPath(path)}
	}
}

// shortPath writes the home directory as ~ (the status line is narrow).
func shortPath(p string) string {
	if home, err := os.UserHomeDir(); err == nil && home != "" && strings.HasPrefix(p, home+string(filepath.Separator)) {
		return "~" + p[len(home):]
	}
	return p
}

// copied reports a copy in the status line.
func (md *Model) copied(msg copiedMsg) {
	if msg.err != nil {
		md.err = msg.err
		md.status = "copy: sent by OSC 52 only (the fallback file failed)"
		return
	}
	md.status = fmt.Sprintf("copied the %s pane: %s, and by OSC 52 to the terminal's clipboard (%d chars)", msg.what, msg.path, msg.chars)
}

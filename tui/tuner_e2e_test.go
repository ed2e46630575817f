package tui

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// esc presses escape and waits a moment, so the next key is not read as
// alt+key.
func (u *tmuxUI) esc() {
	u.keys("Escape")
	time.Sleep(300 * time.Millisecond)
}

// mouseFlags are the pane's mouse tracking modes as tmux sees them
// ("0000": none).
func (u *tmuxUI) mouseFlags() string {
	out, _ := exec.Command("tmux", "display", "-p", "-t", u.name, "#{mouse_any_flag}#{mouse_button_flag}#{mouse_standard_flag}#{mouse_sgr_flag}").Output()
	return strings.TrimSpace(string(out))
}

// TestTunerInTmux drives the real binary on the default model through the
// tuner's tools (issue 13, items 2 and 4; 6 is TestKeyStormInTmux):
//   - alpha typed (= 2.5, enter) steers the next run, which the session
//     saves; a bad value is refused naming the control and its range; undo
//     and redo step back and forth; r resets alpha to the preset's;
//   - S saves a copy under a new name (a taken name needs enter again),
//     N renames it;
//   - Y sends the steered pane's text by OSC 52 (tmux keeps it as a paste
//     buffer) and writes the fallback file, named in the status line;
//   - m turns mouse tracking off and on.
func TestTunerInTmux(t *testing.T) {
	data := t.TempDir()
	exit := filepath.Join(data, "exit")
	// tmux keeps an application's OSC 52 as a paste buffer with this on.
	exec.Command("tmux", "start-server", ";", "set-option", "-s", "set-clipboard", "on").Run()
	u := startUI(t, data, exit, "--prompt", "Tell me about the ocean.", "--max-new-tokens", "8", "--session", "tune")
	u.waitFor("the first run to finish", 4*time.Minute, runDone(1))
	exec.Command("tmux", "set-option", "-s", "set-clipboard", "on").Run()
	u.keys("[") // alpha 0.9 (one run follows)
	u.waitFor("alpha 0.9", 10*time.Second, contains("α 0.9 "))
	u.waitFor("the run at alpha 0.9", 2*time.Minute, runDone(2))

	// 2. A typed value, a refused one, undo, redo, reset.
	u.keys("=", "C-u")
	u.typeLiteral("2.5")
	u.keys("Enter")
	u.waitFor("alpha 2.5", 10*time.Second, contains("α 2.5 "))
	u.waitFor("the run at alpha 2.5", 2*time.Minute, runDone(3))
	u.keys("C-s")
	u.waitFor("the save", 10*time.Second, contains("saved session tune"))
	saved := readSession(t, filepath.Join(data, "sessions", "tune.json"))
	if a := saved["steering"].(map[string]any)["alpha"]; a != 2.5 || saved["steered"] == "" {
		t.Fatalf("the session saved after the typed alpha: alpha %v, steered %q", a, saved["steered"])
	}
	u.keys("=", "C-u")
	u.typeLiteral("1e9")
	u.keys("Enter")
	u.waitFor("the refusal", 10*time.Second, contains(`alpha "1e9"`, "outside [-"))
	u.esc()
	u.waitFor("the entry closed", 10*time.Second, contains("cancelled, nothing changed"))
	u.keys("u")
	u.waitFor("undo to alpha 0.9", 10*time.Second, contains("α 0.9 "))
	u.keys("U")
	u.waitFor("redo to alpha 2.5", 10*time.Second, contains("α 2.5 "))
	u.keys("r")
	u.waitFor("alpha reset to the preset's", 10*time.Second, contains("α 1 "))
	time.Sleep(time.Second) // the debounce: the rerun has started
	u.waitFor("the run after the reset", 2*time.Minute, func(s string) bool {
		for id := 4; id <= 6; id++ {
			if runDone(id)(s) {
				return true
			}
		}
		return false
	})

	// 2. Save-as and rename.
	u.keys("S", "C-u")
	u.typeLiteral("tuned")
	u.keys("Enter")
	u.waitFor("save-as", 10*time.Second, contains("saved as tuned", "session tuned "))
	if _, err := os.Stat(filepath.Join(data, "sessions", "tuned.json")); err != nil {
		t.Fatal(err)
	}
	u.keys("S", "C-u")
	u.typeLiteral("tune")
	u.keys("Enter")
	u.waitFor("the taken name refused", 10*time.Second, contains("tune is saved already"))
	u.esc()
	u.keys("N", "C-u")
	u.typeLiteral("tuned2")
	u.keys("Enter")
	u.waitFor("the rename", 10*time.Second, contains("renamed session tuned to tuned2"))
	if _, err := os.Stat(filepath.Join(data, "sessions", "tuned.json")); !os.IsNotExist(err) {
		t.Fatalf("tuned.json is still there after the rename: %v", err)
	}
	if s := readSession(t, filepath.Join(data, "sessions", "tuned2.json")); s["name"] != "tuned2" {
		t.Fatalf("renamed session: %v", s["name"])
	}
	if s := readSession(t, filepath.Join(data, "sessions", "tune.json")); s["steering"].(map[string]any)["alpha"] != 2.5 {
		t.Fatal("the original session changed")
	}

	// 4. Copy: OSC 52 (tmux's paste buffer) and the fallback file.
	exec.Command("tmux", "delete-buffer").Run()
	// Wide enough for the status line to show the whole path.
	exec.Command("tmux", "resize-window", "-t", u.name, "-x", "220").Run()
	u.keys("Y")
	clip := filepath.Join(data, "clipboard.txt") // the fallback file (clipboardFile)
	u.waitFor("the copy", 10*time.Second, contains("copied the steered pane", clip))
	file, err := os.ReadFile(clip)
	if err != nil || len(file) == 0 {
		t.Fatalf("fallback file: %v", err)
	}
	buf, err := exec.Command("tmux", "show-buffer").Output()
	if err != nil || string(buf) != string(file) {
		t.Fatalf("OSC 52: tmux's buffer %q (%v), the file %q", buf, err, file)
	}
	if steered := readSession(t, filepath.Join(data, "sessions", "tuned2.json"))["steered"]; steered != string(file) {
		t.Fatalf("copied %q, the steered pane holds %q", file, steered)
	}

	// 4. Mouse capture off and on.
	if f := u.mouseFlags(); f == "0000" || f == "" {
		t.Fatalf("mouse tracking is off at the start (%q)", f)
	}
	u.keys("m")
	u.waitFor("mouse capture off", 10*time.Second, contains("mouse capture off"))
	if f := u.mouseFlags(); f != "0000" {
		t.Fatalf("m left mouse tracking on (%q)", f)
	}
	u.keys("m")
	u.waitFor("mouse capture on", 10*time.Second, contains("mouse capture on"))
	if f := u.mouseFlags(); f == "0000" {
		t.Fatal("m again did not turn mouse tracking back on")
	}
	u.keys("q")
	waitFile(t, exit, "0")
}

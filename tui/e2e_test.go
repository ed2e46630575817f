package tui

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tmuxUI drives the real genkit binary in a tmux session.
type tmuxUI struct {
	t    *testing.T
	name string
}

func startUI(t *testing.T, data, exitFile string, args ...string) *tmuxUI {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join("..", "bin", "genkit"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `make build` (make test does)", bin)
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("GENKIT_GPU_SUITE") != "" {
			t.Skip("tmux is not installed on the GPU machine (no network to install it); the tmux tests run in CI")
		}
		t.Fatal("tmux is missing: `make deps` installs it")
	}
	name := fmt.Sprintf("genkit-e2e-%d-%d", os.Getpid(), time.Now().UnixNano()%100000)
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	shell := fmt.Sprintf("env GENKIT_DATA_DIR=%s %s %s; echo $? > %s; sleep 60", data, bin, strings.Join(quoted, " "), exitFile)
	cmd := exec.Command("tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "40", shell)
	cmd.Env = os.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v: %s", err, out)
	}
	u := &tmuxUI{t: t, name: name}
	t.Cleanup(func() { exec.Command("tmux", "kill-session", "-t", name).Run() })
	return u
}

func (u *tmuxUI) screen() string {
	out, _ := exec.Command("tmux", "capture-pane", "-p", "-t", u.name).Output()
	return string(out)
}

func (u *tmuxUI) keys(k ...string) {
	if out, err := exec.Command("tmux", append([]string{"send-keys", "-t", u.name}, k...)...).CombinedOutput(); err != nil {
		u.t.Fatalf("send-keys: %v %s", err, out)
	}
}

// waitFor polls the screen until ok holds (bounded).
func (u *tmuxUI) waitFor(what string, limit time.Duration, ok func(string) bool) string {
	u.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		s := u.screen()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			u.t.Fatalf("waiting for %s; the screen shows:\n%s", what, s)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func runDone(id int) func(string) bool {
	return func(s string) bool {
		return strings.Contains(s, fmt.Sprintf("run %d length", id)) || strings.Contains(s, fmt.Sprintf("run %d eos", id))
	}
}

func readSession(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestEndToEndInTmux runs the real binary on the default model: both panes
// fill, ] raises alpha and starts a new run, ctrl+s saves, q quits with
// exit code 0, and reopening the session restores the settings and text.
func TestEndToEndInTmux(t *testing.T) {
	data := t.TempDir()
	exit1 := filepath.Join(data, "exit1")
	u := startUI(t, data, exit1, "--prompt", "Tell me about the ocean.", "--max-new-tokens", "12", "--session", "e2e")
	s := u.waitFor("the first run to finish", 4*time.Minute, runDone(1))
	if !strings.Contains(s, "steered · pirate · α 1 ") || !strings.Contains(s, "base") {
		t.Fatalf("panes missing:\n%s", s)
	}
	u.keys("]")
	u.waitFor("alpha 1.1", 10*time.Second, func(s string) bool { return strings.Contains(s, "α 1.1") })
	u.waitFor("the second run to finish", 2*time.Minute, runDone(2))
	u.keys("C-s")
	u.waitFor("the save", 10*time.Second, func(s string) bool { return strings.Contains(s, "saved session e2e") })
	u.keys("q")
	waitFile(t, exit1, "0")
	path := filepath.Join(data, "sessions", "e2e.json")
	first := readSession(t, path)
	st := first["steering"].(map[string]any)
	if st["alpha"].(float64) != 1.1 || first["prompt"] != "Tell me about the ocean." || first["steered"] == "" || first["base"] == "" {
		t.Fatalf("saved session: %v", first)
	}
	// Reopen: same settings, and (greedy decoding) the same text.
	exit2 := filepath.Join(data, "exit2")
	u2 := startUI(t, data, exit2, "--session", "e2e")
	s = u2.waitFor("the reopened session's run", 4*time.Minute, runDone(1))
	if !strings.Contains(s, "α 1.1") || !strings.Contains(s, "Tell me about the ocean.") {
		t.Fatalf("reopened session lost its settings:\n%s", s)
	}
	u2.keys("q")
	waitFile(t, exit2, "0")
	second := readSession(t, path)
	if second["steered"] != first["steered"] || second["base"] != first["base"] {
		t.Fatalf("reopened run differs:\n%q / %q\n%q / %q", first["base"], first["steered"], second["base"], second["steered"])
	}
}

func waitFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil {
			if got := strings.TrimSpace(string(b)); got != want {
				t.Fatalf("exit code %s, want %s", got, want)
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the program did not exit")
}

package tui

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// pid is the genkit process running in the tmux pane.
func (u *tmuxUI) pid() int {
	u.t.Helper()
	out, err := exec.Command("tmux", "display", "-p", "-t", u.name, "#{pane_pid}").Output()
	if err != nil {
		u.t.Fatal(err)
	}
	shell := strings.TrimSpace(string(out))
	for i := 0; i < 50; i++ {
		if out, err := exec.Command("pgrep", "-P", shell).Output(); err == nil {
			var p int
			fmt.Sscan(strings.Fields(string(out))[0], &p)
			return p
		}
		time.Sleep(100 * time.Millisecond)
	}
	u.t.Fatal("no genkit process under the tmux pane")
	return 0
}

// TestQuitMidRun quits while a long run streams, by q, ctrl+c and SIGTERM,
// several times each: the app must exit promptly with the conventional
// status (0, 130, 143) and the session saved at that moment. (It used to
// hang for good: quit waited for the runner, which waited to send to the UI.)
func TestQuitMidRun(t *testing.T) {
	data := t.TempDir()
	for _, c := range []struct {
		name string
		how  func(u *tmuxUI)
		code string
	}{
		{"q", func(u *tmuxUI) { u.keys("q") }, "0"},
		{"ctrl+c", func(u *tmuxUI) { u.keys("C-c") }, "130"},
		{"SIGTERM", func(u *tmuxUI) { syscall.Kill(u.pid(), syscall.SIGTERM) }, "143"},
	} {
		for i := 0; i < 3; i++ {
			name := fmt.Sprintf("quit-%d", i)
			exit := filepath.Join(data, fmt.Sprintf("exit-%s-%d", strings.ReplaceAll(c.name, "+", ""), i))
			u := startUI(t, data, exit, "--prompt", "Write a very long story about the sea.", "--max-new-tokens", "2000", "--session", name)
			u.waitFor("the run to stream", 4*time.Minute, func(s string) bool { return strings.Contains(s, "run 1 started") && strings.Contains(s, "tok/s") })
			time.Sleep(500 * time.Millisecond)
			pressed := time.Now()
			c.how(u)
			var got string
			for time.Since(pressed) < 10*time.Second {
				if b, err := os.ReadFile(exit); err == nil {
					got = strings.TrimSpace(string(b))
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			took := time.Since(pressed)
			if got == "" {
				t.Fatalf("%s #%d: genkit did not exit within 10 s of the quit; the screen shows:\n%s", c.name, i, u.screen())
			}
			if got != c.code {
				t.Errorf("%s #%d: exit status %s, want %s", c.name, i, got, c.code)
			}
			if took > 2*time.Second {
				t.Errorf("%s #%d: exit took %v", c.name, i, took)
			}
			st, err := os.Stat(filepath.Join(data, "sessions", name+".json"))
			if err != nil || st.ModTime().Before(pressed.Add(-time.Second)) {
				t.Errorf("%s #%d: session not saved on quit (%v)", c.name, i, err)
			}
			t.Logf("%s #%d: exited with %s after %v", c.name, i, got, took.Round(time.Millisecond))
		}
	}
}

package tui

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlx-genkit/genkit/internal/disttest"
)

// TestLaunchUIInTmux runs the UI under `genkit launch -n 2 --backend ring`
// in tmux, on the synthetic qwen3-test model (it shards over two ranks and
// has a tokenizer): rank 0's UI streams a 4000-token run (the pirate
// vector computed on both ranks first), ] raises alpha mid-run (the run is
// cancelled on both ranks at the same step) and the rerun streams, q quits
// mid-run: launch exits 0 within 10 s (its --grace is 60 s: the follower
// ended on its own), both ranks are gone, the session was saved with the
// new alpha, and the screen shows no rank's complaint (a follower that
// outlives rank 0 without the quit job fails on the lost connection, and
// launch reports it there).
func TestLaunchUIInTmux(t *testing.T) {
	if disttest.Backend(t) != "ring" {
		t.Skip("the launch runs the ring backend")
	}
	dir := t.TempDir()
	model := writeShardableModel(t, dir)
	data := filepath.Join(dir, "data")
	exit := filepath.Join(dir, "exit")
	u := startUIEnv(t, data, exit, []string{"GENKIT_CACHE_DIR=" + filepath.Join(dir, "cache")},
		"launch", "-n", "2", "--backend", "ring", "--grace", "60s", "--",
		"--model", model, "--prompt", "Tell me about the ocean.", "--max-new-tokens", "4000", "--session", "tp")
	u.waitFor("run 1 to stream", 2*time.Minute, allOf("running", "tok/s", "steered · pirate · α 1 "))
	launch := u.pid()
	out, err := exec.Command("pgrep", "-P", strconv.Itoa(launch)).Output()
	ranks := strings.Fields(string(out))
	if err != nil || len(ranks) != 2 {
		t.Fatalf("launch (pid %d) runs ranks %v (%v), want 2", launch, ranks, err)
	}
	u.keys("]")
	s := u.waitFor("the rerun at alpha 1.1 to stream", time.Minute, func(s string) bool {
		return strings.Contains(s, "run 2 st") && strings.Contains(s, "α 1.1") && strings.Contains(s, "running")
	})
	if runDone(1)(s) || runDone(2)(s) {
		t.Fatalf("a run ended before the change or the quit (make it longer):\n%s", s)
	}
	pressed := time.Now()
	u.keys("q")
	waitFile(t, exit, "0")
	took := time.Since(pressed)
	for _, p := range append(ranks, strconv.Itoa(launch)) {
		pid, _ := strconv.Atoi(p)
		if _, ok := gone(pid, 5*time.Second); !ok {
			t.Errorf("process %d still runs after launch exited", pid)
		}
	}
	if took > 10*time.Second {
		t.Errorf("launch took %v to exit after q (the follower did not quit on its own)", took)
	}
	screen := u.screen()
	if strings.Contains(screen, "[rank 1]") || strings.Contains(screen, "exited with status") {
		t.Errorf("a rank complained:\n%s", screen)
	}
	ss := readSession(t, filepath.Join(data, "sessions", "tp.json"))
	if st, _ := ss["steering"].(map[string]any); st["alpha"] != 1.1 || ss["base"] == "" {
		t.Errorf("saved session: %v", ss)
	}
	t.Logf("launch exited 0 %v after q; ranks %v gone", took.Round(time.Millisecond), ranks)
}

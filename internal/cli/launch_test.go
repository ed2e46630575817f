package cli

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlx-genkit/genkit/engine"
)

// asGenkitEnv makes this test binary behave as the genkit command (see
// TestMain), so genkit launch can start it once per rank.
const asGenkitEnv = "GENKIT_TEST_AS_GENKIT"

func TestMain(m *testing.M) {
	if os.Getenv(asGenkitEnv) == "1" {
		os.Exit(Main(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// syncBuffer is a bytes.Buffer that a test may read while a process writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// genkitProc starts this test binary as `genkit args...` and returns it with
// its stdout and stderr buffers.
func genkitProc(t *testing.T, args ...string) (*exec.Cmd, *syncBuffer, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asGenkitEnv+"=1", engine.EnvDistBackend+"=", engine.EnvDistRank+"=")
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &stdout, &stderr
}

// waitFor waits for cmd at most d; a process still running then is killed
// and the test fails (a hang).
func waitFor(t *testing.T, cmd *exec.Cmd, d time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, time.Since(start)
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("genkit %v still running after %v: killed", cmd.Args[1:], d)
		return -1, d
	}
}

// TestLaunchTwoRanksRing: genkit launch -n 2 -- dist-check runs two ranks
// over the ring backend on loopback; rank 0 prints on stdout, rank 1's lines
// come prefixed on stderr, and both saw the other's numbers.
func TestLaunchTwoRanksRing(t *testing.T) {
	cmd, stdout, stderr := genkitProc(t, "launch", "-n", "2", "--backend", "ring", "--init-timeout", "30s", "--", "dist-check")
	code, _ := waitFor(t, cmd, 90*time.Second)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if want := "rank 0 of 2 (ring): all_sum 3, all_gather [0 1]: ok"; !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	if want := "[rank 1] rank 1 of 2 (ring): all_sum 3, all_gather [0 1]: ok"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
	if strings.Contains(stdout.String(), "rank 1 of") {
		t.Errorf("rank 1's output reached stdout: %q", stdout)
	}
}

// TestLaunchOneRank: -n 1 runs one copy alone (a group of one).
func TestLaunchOneRank(t *testing.T) {
	cmd, stdout, stderr := genkitProc(t, "launch", "-n", "1", "--", "dist-check")
	code, _ := waitFor(t, cmd, 60*time.Second)
	if want := "rank 0 of 1 (any): all_sum 1, all_gather [0]: ok"; code != 0 || !strings.Contains(stdout.String(), want) {
		t.Errorf("exit %d, stdout %q (want %q), stderr %q", code, stdout, want, stderr)
	}
}

// TestLaunchRankFails: rank 1 fails at once, so rank 0 waits for a peer that
// never comes; the launcher must stop rank 0 and say which rank failed, with
// status 101, well before the ranks' own 60 s init timeout.
func TestLaunchRankFails(t *testing.T) {
	cmd, stdout, stderr := genkitProc(t, "launch", "-n", "2", "--backend", "ring", "--init-timeout", "60s", "--grace", "2s", "--", "dist-check", "--fail-rank", "1")
	code, took := waitFor(t, cmd, 45*time.Second)
	if code != 101 {
		t.Errorf("exit %d, want 101 (rank 1 failed)\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if want := "rank 1 of 2 exited with status 3"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q, want it to contain %q", stderr, want)
	}
	if took > 30*time.Second {
		t.Errorf("took %v: rank 0 was not stopped promptly", took)
	}
}

// TestLaunchFollowerFailsLate: rank 1 fails after rank 0 ended well: launch
// reports it and exits 0 (rank 0's work is done).
func TestLaunchFollowerFailsLate(t *testing.T) {
	cmd, stdout, stderr := genkitProc(t, "launch", "-n", "2", "--backend", "ring", "--init-timeout", "30s", "--", "dist-check", "--late-fail-rank", "1")
	code, _ := waitFor(t, cmd, 60*time.Second)
	if want := "rank 1 exited with status 4 after rank 0 ended"; code != 0 || !strings.Contains(stderr.String(), want) {
		t.Errorf("exit %d, want 0 and %q\nstdout:\n%s\nstderr:\n%s", code, want, stdout, stderr)
	}
}

// TestLaunchRankZeroFails: rank 0's own failure is launch's exit status.
func TestLaunchRankZeroFails(t *testing.T) {
	cmd, stdout, stderr := genkitProc(t, "launch", "-n", "2", "--backend", "ring", "--grace", "2s", "--", "dist-check", "--fail-rank", "0")
	code, _ := waitFor(t, cmd, 45*time.Second)
	if code != 3 || !strings.Contains(stderr.String(), "rank 0 of 2 exited with status 3") {
		t.Errorf("exit %d, want 3 with rank 0 named\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// TestLaunchInterrupt: SIGINT to the launcher reaches every rank; launch
// exits 130 and no rank outlives it.
func TestLaunchInterrupt(t *testing.T) {
	cmd, stdout, stderr := genkitProc(t, "launch", "-n", "2", "--backend", "ring", "--init-timeout", "30s", "--", "dist-check", "--hold", "5m")
	// Wait until both ranks have checked in (they then hold for 5 minutes).
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(stderr.String(), "[rank 1] rank 1 of 2") || !strings.Contains(stdout.String(), "rank 0 of 2") {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("ranks did not check in\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code, took := waitFor(t, cmd, 30*time.Second)
	if code != 130 {
		t.Errorf("exit %d, want 130\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if took > 10*time.Second {
		t.Errorf("took %v after SIGINT: the ranks did not stop on the signal", took)
	}
	// Both ranks report the interruption themselves (they got the signal).
	if !strings.Contains(stderr.String(), "dist-check: interrupted") || !strings.Contains(stderr.String(), "[rank 1] genkit: dist-check: interrupted") {
		t.Errorf("the ranks did not report the interruption:\n%s", stderr)
	}
}

// TestLaunchPlan checks the environments genkit launch gives its ranks and
// the requests it refuses.
func TestLaunchPlan(t *testing.T) {
	dir := t.TempDir()
	envs, err := launchPlan(3, "ring", time.Minute, dir)
	if err != nil {
		t.Fatal(err)
	}
	host, err := os.ReadFile(envs[0][engine.EnvDistHostfile])
	if err != nil {
		t.Fatal(err)
	}
	for r, e := range envs {
		if e[engine.EnvDistRank] != []string{"0", "1", "2"}[r] || e[engine.EnvDistBackend] != "ring" || e[engine.EnvDistTimeout] != "1m0s" || e[engine.EnvDistHostfile] != envs[0][engine.EnvDistHostfile] {
			t.Errorf("rank %d env %v", r, e)
		}
	}
	if strings.Count(string(host), "127.0.0.1:") != 3 {
		t.Errorf("hostfile %s, want 3 loopback addresses", host)
	}
	for _, bad := range []struct {
		n       int
		backend string
		timeout time.Duration
	}{{0, "ring", time.Minute}, {2, "tcp", time.Minute}, {2, "ring", 0}} {
		if _, err := launchPlan(bad.n, bad.backend, bad.timeout, dir); err == nil {
			t.Errorf("launchPlan(%d, %q, %v) succeeded", bad.n, bad.backend, bad.timeout)
		}
	}
	// The CPU build of MLX has no NCCL: refused with a reason.
	if ok, _ := engine.DistributedAvailable(engine.DistNCCL); !ok {
		if _, err := launchPlan(2, "nccl", time.Minute, dir); err == nil || !strings.Contains(err.Error(), "NCCL") {
			t.Errorf("nccl without NCCL: err = %v", err)
		}
	}
	env := rankEnv([]string{"A=1", "MLX_RANK=9", "B=2", "D=4"}, map[string]string{"MLX_RANK": "0", "C": "3", "D": ""})
	if got := strings.Join(env, " "); got != "A=1 B=2 C=3 MLX_RANK=0" {
		t.Errorf("rankEnv = %q", got)
	}
	// One rank runs alone: no distributed variables, inherited ones removed.
	one, err := launchPlan(1, "ring", time.Minute, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rankEnv([]string{"MLX_RANK=3", "MLX_HOSTFILE=h", "X=1"}, one[0]), " "); got != "X=1" {
		t.Errorf("-n 1 environment %q, want X=1", got)
	}
	if failureCode(0, 7) != 7 || failureCode(1, 7) != 101 || failureCode(40, 1) != 125 {
		t.Error("failureCode")
	}
}

// TestPrefixWriter: lines come out whole and prefixed, a last partial line
// on flush.
func TestPrefixWriter(t *testing.T) {
	var out bytes.Buffer
	p := &prefixWriter{mu: new(sync.Mutex), w: &out, prefix: "[rank 1] "}
	p.Write([]byte("ab"))
	p.Write([]byte("c\nd\ne"))
	if out.String() != "[rank 1] abc\n[rank 1] d\n" {
		t.Errorf("got %q", out.String())
	}
	p.flush()
	if out.String() != "[rank 1] abc\n[rank 1] d\n[rank 1] e\n" {
		t.Errorf("after flush %q", out.String())
	}
}

// TestUIJoinsTheGroupUnderLaunch: under genkit launch's variables
// (GENKIT_DIST_BACKEND set) the terminal UI joins the group before anything
// else (here it fails to, MLX_RANK and MLX_HOSTFILE being unset, with
// MLX's error naming them); without them it does not try. The UI itself
// under launch is tested by tui's TestLaunchUIInTmux.
func TestUIJoinsTheGroupUnderLaunch(t *testing.T) {
	t.Setenv("GENKIT_DATA_DIR", t.TempDir())
	t.Setenv("GENKIT_DIST_BACKEND", "ring")
	t.Setenv("MLX_RANK", "")
	t.Setenv("MLX_HOSTFILE", "")
	if _, err := run(t, "--prompt", "hi"); err == nil || !strings.Contains(err.Error(), "mlx distributed init (ring") {
		t.Fatalf("UI under launch: err %v, want the group's init error", err)
	}
	t.Setenv("GENKIT_DIST_BACKEND", "")
	_, err := run(t, "--prompt", "hi", "--model", filepath.Join(t.TempDir(), "absent"))
	if err != nil && strings.Contains(err.Error(), "distributed") {
		t.Fatalf("UI without launch tried to join a group: %v", err)
	}
}

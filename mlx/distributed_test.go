package mlx

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The two-process tests re-run this test binary once per rank with
// distWorkerEnv set; TestDistWorker then plays that rank.
const (
	distWorkerEnv  = "GENKIT_TEST_DIST_WORKER" // "collectives" or "alone"
	distTimeoutEnv = "GENKIT_TEST_DIST_INIT_TIMEOUT"
)

// startRanks starts one process per rank of the given hostfile (ranks lists
// which ones) and waits for them all, at most limit. It returns each rank's
// combined output and exit error.
func startRanks(t *testing.T, role string, addrs []string, ranks []int, initTimeout, limit time.Duration) ([]string, []error) {
	t.Helper()
	host, err := RingHostfile(addrs)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "hosts.json")
	if err := os.WriteFile(path, host, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	outs := make([]strings.Builder, len(ranks))
	cmds := make([]*exec.Cmd, len(ranks))
	for i, r := range ranks {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDistWorker$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(),
			distWorkerEnv+"="+role,
			distTimeoutEnv+"="+initTimeout.String(),
			EnvRank+"="+strconv.Itoa(r),
			EnvHostfile+"="+path,
		)
		cmd.Stdout = &outs[i]
		cmd.Stderr = &outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	errs := make([]error, len(ranks))
	for i, cmd := range cmds {
		errs[i] = cmd.Wait()
	}
	if ctx.Err() != nil {
		t.Errorf("ranks still running after %v: killed (a hang)", limit)
	}
	res := make([]string, len(ranks))
	for i := range outs {
		res[i] = outs[i].String()
	}
	return res, errs
}

// TestDistRingTwoProcesses runs two ranks over the ring backend on loopback:
// each sums and gathers arrays it builds from its rank, and checks the exact
// results (see TestDistWorker).
func TestDistRingTwoProcesses(t *testing.T) {
	if os.Getenv(distWorkerEnv) != "" {
		t.Skip("inside a worker")
	}
	addrs, err := FreeLoopbackAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	outs, errs := startRanks(t, "collectives", addrs, []int{0, 1}, 30*time.Second, 90*time.Second)
	for r := range outs {
		if errs[r] != nil || !strings.Contains(outs[r], fmt.Sprintf("rank %d of 2: collectives ok", r)) {
			t.Errorf("rank %d: %v\n%s", r, errs[r], outs[r])
		}
	}
}

// TestDistRingPeerNeverComes starts rank 0 of a two-rank ring alone: it must
// fail with a clear error within its init timeout instead of hanging.
func TestDistRingPeerNeverComes(t *testing.T) {
	if os.Getenv(distWorkerEnv) != "" {
		t.Skip("inside a worker")
	}
	addrs, err := FreeLoopbackAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	outs, errs := startRanks(t, "alone", addrs, []int{0}, 3*time.Second, 60*time.Second)
	took := time.Since(start)
	t.Logf("rank 0 alone (%v):\n%s", took, outs[0])
	if errs[0] == nil {
		t.Fatalf("rank 0 without its peer succeeded:\n%s", outs[0])
	}
	if !strings.Contains(outs[0], "peers did not connect in time") && !strings.Contains(outs[0], "[ring]") {
		t.Errorf("rank 0 failed without saying why:\n%s", outs[0])
	}
	if took > 30*time.Second {
		t.Errorf("rank 0 took %v to give up, want about its 3s init timeout", took)
	}
}

// TestDistWorker is one rank of the tests above; it does nothing in a normal
// run.
func TestDistWorker(t *testing.T) {
	role := os.Getenv(distWorkerEnv)
	if role == "" {
		t.Skip("run by TestDistRing* only")
	}
	timeout, err := time.ParseDuration(os.Getenv(distTimeoutEnv))
	if err != nil {
		t.Fatal(err)
	}
	g, err := InitGroupTimeout(BackendRing, true, timeout)
	if err != nil {
		t.Fatal(err)
	}
	if role == "alone" {
		t.Fatalf("init succeeded without the peer: %v", g)
	}
	if g.Size() != 2 || g.Rank() != mustAtoi(t, os.Getenv(EnvRank)) {
		t.Fatalf("group %v, want rank %s of 2", g, os.Getenv(EnvRank))
	}
	r := g.Rank()
	err = Do(context.Background(), func() error {
		s := NewScope()
		defer s.Close()
		// float32 [2,3]: rank r holds (r+1)*(i+1) + r/2 at flat index i, so
		// the sum over ranks 0 and 1 is 3*(i+1) + 0.5.
		vals := make([]float32, 6)
		for i := range vals {
			vals[i] = float32((r+1)*(i+1)) + float32(r)/2
		}
		x := s.Track(FromFloat32s(vals, 2, 3))
		sum := s.Track(AllSum(x, g))
		// int32: rank 0 holds -7, 100; rank 1 holds 1000, 1.
		iv := map[int][]int32{0: {-7, 100}, 1: {1000, 1}}[r]
		xi := s.Track(FromInt32s(iv, 2))
		isum := s.Track(AllSum(xi, g))
		// all_gather of [2] float32 {r, 10+r}: {0, 10, 1, 11}.
		gv := s.Track(FromFloat32s([]float32{float32(r), float32(10 + r)}, 2))
		gat := s.Track(AllGather(gv, g))
		if err := s.Err(); err != nil {
			return err
		}
		got, err := sum.Float32s()
		if err != nil {
			return err
		}
		if sh := sum.Shape(); len(sh) != 2 || sh[0] != 2 || sh[1] != 3 {
			return fmt.Errorf("all_sum shape %v, want [2 3]", sh)
		}
		for i, v := range got {
			if want := float32(3*(i+1)) + 0.5; v != want {
				return fmt.Errorf("all_sum[%d] = %v, want %v", i, v, want)
			}
		}
		gi, err := isum.Int32s()
		if err != nil {
			return err
		}
		if isum.Dtype() != Int32 || len(gi) != 2 || gi[0] != 993 || gi[1] != 101 {
			return fmt.Errorf("int32 all_sum = %v (%v), want [993 101] int32", gi, isum.Dtype())
		}
		ga, err := gat.Float32s()
		if err != nil {
			return err
		}
		want := []float32{0, 10, 1, 11}
		if len(ga) != len(want) {
			return fmt.Errorf("all_gather = %v, want %v", ga, want)
		}
		for i := range want {
			if ga[i] != want[i] {
				return fmt.Errorf("all_gather = %v, want %v", ga, want)
			}
		}
		if err := Barrier(g); err != nil {
			return err
		}
		// Broadcasts: from rank 0, from rank 1, an empty one.
		for _, c := range []struct {
			root int
			msg  string
		}{{0, "request from rank 0: décode ✓"}, {1, "\x00\xffbytes from rank 1"}, {0, ""}} {
			data := []byte("not the root's bytes")
			if r == c.root {
				data = []byte(c.msg)
			}
			got, err := BroadcastBytes(g, c.root, data)
			if err != nil {
				return err
			}
			if string(got) != c.msg {
				return fmt.Errorf("broadcast from rank %d = %q, want %q", c.root, got, c.msg)
			}
		}
		// AllGatherAxis along the last axis: rank r holds [2, 2] with
		// entries 100*r + 10*row + col; the result is [2, 4], rank 0's
		// columns then rank 1's.
		blk := s.Track(FromFloat32s([]float32{float32(100 * r), float32(100*r + 1), float32(100*r + 10), float32(100*r + 11)}, 2, 2))
		cat := s.Track(AllGatherAxis(blk, g, -1))
		if err := s.Err(); err != nil {
			return err
		}
		cv, err := cat.Float32s()
		if err != nil {
			return err
		}
		if want := []float32{0, 1, 100, 101, 10, 11, 110, 111}; fmt.Sprint(cv) != fmt.Sprint(want) || fmt.Sprint(cat.Shape()) != "[2 4]" {
			return fmt.Errorf("all_gather along the last axis = %v %v, want [2 4] %v", cat.Shape(), cv, want)
		}
		if _, err := AllGatherAxis(blk, g, 2); err == nil {
			return fmt.Errorf("all_gather along axis 2 of a 2-d array accepted")
		}
		if _, err := BroadcastBytes(g, 2, nil); err == nil {
			return fmt.Errorf("broadcast from rank 2 of 2 accepted")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("rank %d: %v", r, err)
	}
	fmt.Printf("rank %d of 2: collectives ok\n", r)
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDistInitWithoutEnvironment: strict, the ring backend without MLX_RANK
// and MLX_HOSTFILE is an error naming them; not strict, it is a group of one
// in which AllSum returns its input.
func TestDistInitWithoutEnvironment(t *testing.T) {
	if os.Getenv(distWorkerEnv) != "" {
		t.Skip("inside a worker")
	}
	t.Setenv(EnvRank, "")
	os.Unsetenv(EnvRank)
	t.Setenv(EnvHostfile, "")
	os.Unsetenv(EnvHostfile)
	_, err := InitGroupTimeout(BackendRing, true, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), EnvRank) || !strings.Contains(err.Error(), EnvHostfile) {
		t.Fatalf("strict ring init without environment: err = %v, want one naming %s and %s", err, EnvRank, EnvHostfile)
	}
	g, err := InitGroupTimeout(BackendRing, false, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if g.Size() != 1 || g.Rank() != 0 {
		t.Fatalf("non-strict group %v, want rank 0 of 1", g)
	}
	err = Do(context.Background(), func() error {
		x, err := FromFloat32s([]float32{1.5, -2}, 2)
		if err != nil {
			return err
		}
		defer x.Free()
		y, err := AllSum(x, g)
		if err != nil {
			return err
		}
		defer y.Free()
		v, err := y.Float32s()
		if err != nil {
			return err
		}
		if len(v) != 2 || v[0] != 1.5 || v[1] != -2 {
			return fmt.Errorf("all_sum in a group of one = %v, want [1.5 -2]", v)
		}
		return Barrier(g)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDistOffThread: collectives called outside the MLX thread are refused.
func TestDistOffThread(t *testing.T) {
	_, err := AllSum(nil, nil)
	if err == nil {
		t.Fatal("AllSum(nil) succeeded")
	}
	var x *Array
	err = Do(context.Background(), func() error {
		var err error
		x, err = FromFloat32s([]float32{1}, 1)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Free()
	if _, err := AllSum(x, nil); !errors.Is(err, ErrNotOnThread) {
		t.Fatalf("AllSum off the MLX thread: err = %v, want ErrNotOnThread", err)
	}
}

// TestRingHostfile checks the hostfile JSON and the addresses it refuses.
func TestRingHostfile(t *testing.T) {
	b, err := RingHostfile([]string{"127.0.0.1:5000", "10.0.0.2:5001"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `[["127.0.0.1:5000"],["10.0.0.2:5001"]]`; got != want {
		t.Errorf("hostfile %s, want %s", got, want)
	}
	for _, bad := range []string{"localhost:5000", "127.0.0.1", "[::1]:5000", "127.0.0.1:0", "127.0.0.1:x"} {
		if _, err := RingHostfile([]string{bad}); err == nil {
			t.Errorf("RingHostfile accepted %q", bad)
		}
	}
	addrs, err := FreeLoopbackAddrs(3)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if !strings.HasPrefix(a, "127.0.0.1:") || seen[a] {
			t.Errorf("addresses %v: want distinct 127.0.0.1 ports", addrs)
		}
		seen[a] = true
	}
	if _, err := FreeLoopbackAddrs(0); err == nil {
		t.Error("FreeLoopbackAddrs(0) succeeded")
	}
}

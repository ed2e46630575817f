package tui

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/internal/disttest"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/steering"
)

// lockstepEnv makes TestLockstepWorker play one rank of
// TestRunnerLockstepTwoProcesses; it holds the file rank 0 writes its
// results to, and lockstepModelEnv the model folder.
const (
	lockstepEnv      = "GENKIT_TEST_LOCKSTEP"
	lockstepModelEnv = "GENKIT_TEST_LOCKSTEP_MODEL"
)

// lockstepRun is one run's outcome, as rank 0's runner reported it.
type lockstepRun struct {
	Lanes    [][]int `json:"lanes"`
	Finished string  `json:"finished"`
	Seed     uint64  `json:"seed"`
	Err      string  `json:"err"`
}

// lockstepResults are what rank 0 saw.
type lockstepResults struct {
	Runs      map[string]lockstepRun `json:"runs"`
	Made      map[int][]float32      `json:"made"`     // Extract from the user's texts
	Resolved  map[int][]float32      `json:"resolved"` // an export's resolve
	Cancelled int                    `json:"cancelled"`
	// CLI is a run with no seed that every rank decodes itself, as a CLI
	// command under genkit launch does (rank 0's seed is taken).
	CLI lockstepRun `json:"cli"`
	// Device are runs on the pipelined device loop (no Scores observer, as
	// the CLI decodes): one cancelled by rank 0 mid-decode, one stopped by
	// rank 0's max_time.
	Device map[string]lockstepRun `json:"device"`
	// Extras are more runs every rank decodes itself (cliExtras).
	Extras map[string]lockstepRun `json:"extras"`
}

// deviceRun is the run of the device-loop jobs: sampled, seed 10, 1000
// tokens (the whole run, which one process decodes to compare with).
func deviceRun(t *testing.T, m *engine.Model, maxTime float64) steering.Run {
	t.Helper()
	s := lockstepSettings()["first"]
	s.Gen.Seed, s.Gen.MaxNewTokens = sampling.Ptr(uint64(10)), sampling.Ptr(1000)
	if maxTime > 0 {
		s.Gen.MaxTime = sampling.Ptr(maxTime)
	}
	gen, err := steering.Generation(m, &s.Gen)
	if err != nil {
		t.Fatal(err)
	}
	return s.Run(gen)
}

// cliExtras are runs every rank decodes itself, as a CLI command does under
// genkit launch: beam search (three beams, all returned), and a steered run with
// a stop string taken from the middle of a first run's base text, so the
// stop comes for certain (the stop decision is each rank's, from the same
// tokens). It returns the runs and the stop string.
func cliExtras(t *testing.T, m *engine.Model) (map[string]lockstepRun, string) {
	t.Helper()
	ctx := context.Background()
	out := map[string]lockstepRun{}
	beam := deviceRun(t, m, 0)
	beam.Plan, beam.Steering, beam.LaneScales = nil, nil, nil
	g := *beam.Gen
	g.DoSample, g.NumBeams, g.NumReturnSequences, g.MaxNewTokens = sampling.Ptr(false), sampling.Ptr(3), sampling.Ptr(3), sampling.Ptr(10)
	beam.Gen = &g
	out["beams"] = decoded(steering.Decode(ctx, m, beam, steering.Observers{}))
	run := deviceRun(t, m, 0)
	gs := *run.Gen
	gs.MaxNewTokens = sampling.Ptr(40)
	run.Gen = &gs
	first, err := steering.Decode(ctx, m, run, steering.Observers{})
	if err != nil {
		t.Fatal(err)
	}
	text := []rune(first.Lanes[0].Text)
	if len(text) < 8 {
		t.Fatalf("the first run's base text %q is too short to take a stop string from", string(text))
	}
	stop := string(text[len(text)/2 : len(text)/2+2])
	gs.StopStrings = sampling.Strings{stop}
	out["stops"] = decoded(steering.Decode(ctx, m, run, steering.Observers{}))
	return out, stop
}

// decoded is a steering outcome as a lockstepRun.
func decoded(out *steering.Outcome, err error) lockstepRun {
	var r lockstepRun
	if err != nil {
		r.Err = err.Error()
		return r
	}
	r.Seed = out.Seed
	for _, l := range out.Lanes {
		r.Lanes = append(r.Lanes, l.Tokens)
		r.Finished = l.Finished
	}
	return r
}

// checkPrefix checks that cut's lanes are prefixes of whole's, at least
// one strictly shorter.
func checkPrefix(t *testing.T, name string, cut, whole lockstepRun) {
	t.Helper()
	if len(cut.Lanes) != len(whole.Lanes) || len(whole.Lanes) == 0 {
		t.Fatalf("%s: sharded %+v, whole run %+v", name, cut, whole)
	}
	shorter := false
	for i, l := range cut.Lanes {
		if len(l) > len(whole.Lanes[i]) || fmt.Sprint(l) != fmt.Sprint(whole.Lanes[i][:len(l)]) {
			t.Errorf("%s lane %d: sharded %v is not a prefix of one process's %v", name, i, l, whole.Lanes[i])
		}
		shorter = shorter || len(l) < len(whole.Lanes[i])
	}
	if !shorter {
		t.Errorf("%s: not cut short (%d tokens, the whole run %d)", name, len(cut.Lanes[0]), len(whole.Lanes[0]))
	}
	t.Logf("%s: %s after %d/%d tokens of the whole run's %d/%d", name, cut.Finished, len(cut.Lanes[0]), len(cut.Lanes[1]),
		len(whole.Lanes[0]), len(whole.Lanes[1]))
}

// lockstepSettings are the runs' settings: sampled (temperature 1.5, so
// any rank drawing other tokens shows) on the pirate preset, whose vector
// the first run computes.
func lockstepSettings() map[string]Settings {
	base := DefaultSettings()
	base.Gen.DoSample = sampling.Ptr(true)
	base.Gen.Temperature = sampling.Ptr(1.5)
	base.Gen.MaxNewTokens = sampling.Ptr(12)
	with := func(f func(s *Settings)) Settings {
		s := base
		s.Steering.Alpha = nil
		s.Gen.Seed = sampling.Ptr(uint64(7))
		f(&s)
		return s
	}
	return map[string]Settings{
		"first": with(func(s *Settings) {}),
		// Long enough to be cancelled mid-decode by the next start.
		"cancelled": with(func(s *Settings) { s.Gen.Seed, s.Gen.MaxNewTokens = sampling.Ptr(uint64(8)), sampling.Ptr(400) }),
		"random": with(func(s *Settings) {
			s.Gen.Seed = nil
			a := 1.5
			s.Steering.Alpha = &a
		}),
		"sweep": with(func(s *Settings) { s.Gen.Seed, s.Sweep = sampling.Ptr(uint64(9)), true }),
		// A prompt of more than one prefill chunk (512 tokens).
		"long": with(func(s *Settings) { s.Prompt = strings.Repeat("The sea is wide and the ship is small. ", 30) }),
		// Beyond the model's context: Decode refuses it on every rank.
		"refused": with(func(s *Settings) { s.Gen.MaxNewTokens = sampling.Ptr(5000) }),
	}
}

// lockstepTexts are the contrastive texts of the vector the test makes.
var lockstepTexts = [2][]string{{"Arr, the sea be wide.", "Ahoy, matey!"}, {"The sea is wide.", "Hello, friend!"}}

// runCollector reads a runner's messages and keeps the final snapshots.
type runCollector struct {
	t    *testing.T
	msgs chan tea.Msg
	done map[int]SnapshotMsg
}

func newCollected(t *testing.T, m *engine.Model, lead *steering.Leader) (*Runner, *runCollector) {
	c := &runCollector{t: t, msgs: make(chan tea.Msg, 1024), done: map[int]SnapshotMsg{}}
	return NewRunner(m, lead, func(msg tea.Msg) { c.msgs <- msg }), c
}

// until reads messages until ok holds for a snapshot (final snapshots are
// kept on the way).
func (c *runCollector) until(what string, ok func(SnapshotMsg) bool) SnapshotMsg {
	c.t.Helper()
	limit := time.After(2 * time.Minute)
	for {
		select {
		case msg := <-c.msgs:
			s, isSnap := msg.(SnapshotMsg)
			if !isSnap {
				continue
			}
			if s.Done {
				c.done[s.RunID] = s
			}
			if ok(s) {
				return s
			}
		case <-limit:
			c.t.Fatalf("waiting for %s: no message for 2 minutes", what)
		}
	}
}

// wait returns run id's final snapshot.
func (c *runCollector) wait(id int) SnapshotMsg {
	c.t.Helper()
	if s, ok := c.done[id]; ok {
		return s
	}
	return c.until(fmt.Sprintf("run %d", id), func(s SnapshotMsg) bool { return s.Done && s.RunID == id })
}

func outcome(s SnapshotMsg) lockstepRun {
	r := lockstepRun{Finished: s.Finished, Seed: s.Seed}
	for _, l := range s.Lanes {
		r.Lanes = append(r.Lanes, append([]int{}, l.Tokens...))
	}
	if s.Err != nil {
		r.Err = s.Err.Error()
	}
	return r
}

// TestRunnerLockstepTwoProcesses runs the UI's model work on a model
// sharded over two processes (MLX's ring backend on loopback, as `genkit
// launch -n 2` runs the UI): rank 0 drives the UI's Runner through a
// steering.Leader, rank 1 follows (steering.Follow). Rank 0 runs a pirate
// run (its vector computed on both ranks), a long run cancelled mid-decode
// by the next start, a run with no seed (drawn on rank 0), an alpha sweep,
// a run every rank refuses, the first run again, a vector made from texts
// and an export's resolve, then quits. Every result equals one process's
// (the random run at the seed rank 0 drew; the cancelled run is a strict
// prefix of the whole run), rank 1 saw exactly the refusal rank 0 saw, and
// both processes exit. Before that, both ranks decode a run with no seed
// themselves, as a CLI command under genkit launch does: it equals one
// process's at the seed rank 0 drew.
func TestRunnerLockstepTwoProcesses(t *testing.T) {
	if os.Getenv(lockstepEnv) != "" {
		t.Skip("inside a worker")
	}
	disttest.Backend(t)
	dir := t.TempDir()
	model := writeShardableModel(t, dir)
	results := filepath.Join(dir, "rank0.json")
	outs := disttest.Run(t, 2, "TestLockstepWorker", []string{lockstepEnv + "=" + results, lockstepModelEnv + "=" + model,
		"GENKIT_CACHE_DIR=" + filepath.Join(dir, "cache-sharded")}, 4*time.Minute)
	data, err := os.ReadFile(results)
	if err != nil {
		t.Fatal(err)
	}
	var got lockstepResults
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}

	// One process, its own vector cache.
	t.Setenv("GENKIT_CACHE_DIR", filepath.Join(dir, "cache-one"))
	m, err := engine.Load(context.Background(), model, engine.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	r, c := newCollected(t, m, nil)
	settings := lockstepSettings()
	one := func(s Settings) lockstepRun { return outcome(c.wait(r.Start(s))) }
	same := func(name string, want lockstepRun) {
		t.Helper()
		g := got.Runs[name]
		if fmt.Sprint(g.Lanes) != fmt.Sprint(want.Lanes) || g.Finished != want.Finished || g.Err != want.Err {
			t.Errorf("%s: sharded %+v, one process %+v", name, g, want)
		}
	}
	first := one(settings["first"])
	same("first", first)
	same("again", first)
	same("sweep", one(settings["sweep"]))
	same("long", one(settings["long"]))
	if ids, err := m.EncodePrompt(settings["long"].Run(nil).Prompt); err != nil || len(ids) <= 512 {
		t.Errorf("the long prompt is %d tokens (%v), want more than one prefill chunk of 512", len(ids), err)
	}
	wantExtras, stop := cliExtras(t, m)
	for name, want := range wantExtras {
		if g := got.Extras[name]; fmt.Sprint(g) != fmt.Sprint(want) {
			t.Errorf("%s: sharded %+v, one process %+v", name, g, want)
		}
	}
	if len(wantExtras["beams"].Lanes) != 3 {
		t.Errorf("beams: %d hypotheses, want 3", len(wantExtras["beams"].Lanes))
	}
	stopRun := deviceRun(t, m, 0)
	sg := *stopRun.Gen
	sg.MaxNewTokens, sg.StopStrings = sampling.Ptr(40), sampling.Strings{stop}
	stopRun.Gen = &sg
	if out, err := steering.Decode(context.Background(), m, stopRun, steering.Observers{}); err != nil || out.Lanes[0].Finished != "stop" {
		t.Errorf("the stop string %q did not stop the base lane: %v", stop, err)
	}
	same("refused", one(settings["refused"]))
	if !strings.Contains(got.Runs["refused"].Err, "beyond the model's context") {
		t.Errorf("refused: %q", got.Runs["refused"].Err)
	}
	rnd := settings["random"]
	if got.Runs["random"].Seed == 0 || got.Runs["random"].Finished == "" {
		t.Fatalf("random: %+v", got.Runs["random"])
	}
	rnd.Gen.Seed = sampling.Ptr(got.Runs["random"].Seed)
	same("random", one(rnd))

	for _, name := range []string{"first", "cancelled", "random", "sweep", "refused", "again"} {
		g := got.Runs[name]
		t.Logf("%s: %s, seed %d, lanes %v %s", name, g.Finished, g.Seed, g.Lanes, g.Err)
	}
	if got.Runs["cancelled"].Finished != "cancelled" || got.Cancelled < 4 {
		t.Errorf("the long run: %s after %d steps seen, want cancelled after 4 or more", got.Runs["cancelled"].Finished, got.Cancelled)
	}
	checkPrefix(t, "the cancelled run", got.Runs["cancelled"], one(settings["cancelled"]))
	cliRun := deviceRun(t, m, 0)
	cliRun.Gen.Seed, cliRun.Gen.MaxNewTokens = sampling.Ptr(got.CLI.Seed), sampling.Ptr(24)
	if want := decoded(steering.Decode(context.Background(), m, cliRun, steering.Observers{})); got.CLI.Seed == 0 ||
		fmt.Sprint(got.CLI.Lanes) != fmt.Sprint(want.Lanes) {
		t.Errorf("a CLI run with no seed: sharded %+v, one process at its seed %+v", got.CLI, want)
	}
	whole := decoded(steering.Decode(context.Background(), m, deviceRun(t, m, 0), steering.Observers{}))
	for name, why := range map[string]string{"cancel": "cancelled", "time": "time"} {
		g := got.Device[name]
		if g.Finished != why {
			t.Errorf("%s on the device loop: %+v, want lanes %s", name, g, why)
		}
		checkPrefix(t, name+" on the device loop", g, whole)
	}

	pairs, err := steering.TextPairs(m, lockstepTexts[0], lockstepTexts[1])
	if err != nil {
		t.Fatal(err)
	}
	ex, err := steering.Extract(context.Background(), m, pairs, steering.ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	closeVectors(t, "made vector", got.Made, ex.Vectors)
	plan := steering.DefaultPlan()
	plan.Method = steering.MethodPCA
	res, err := steering.Resolve(context.Background(), m, plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeVectors(t, "resolved vector", got.Resolved, res.Vectors)

	if !strings.Contains(outs[1], "rank 1: followed; job errors: [decode: max_new_tokens") {
		t.Errorf("rank 1 did not report exactly the refused run's error:\n%s", outs[1])
	}
}

// closeVectors checks sharded vectors against one process's, to 1e-4 of
// their norm (the all-sums add in another order).
func closeVectors(t *testing.T, what string, got, want map[int][]float32) {
	t.Helper()
	if len(got) != len(want) || len(want) == 0 {
		t.Fatalf("%s: %d layers sharded, %d in one process", what, len(got), len(want))
	}
	for l, w := range want {
		g := got[l]
		if len(g) != len(w) {
			t.Fatalf("%s layer %d: %d values sharded, %d in one process", what, l, len(g), len(w))
		}
		var d, n float64
		for i := range w {
			d = math.Max(d, math.Abs(float64(g[i]-w[i])))
			n += float64(w[i]) * float64(w[i])
		}
		if d > 1e-4*math.Max(1, math.Sqrt(n)) {
			t.Errorf("%s layer %d differs from one process's by %g (norm %g)", what, l, d, math.Sqrt(n))
		}
	}
}

// writeShardableModel writes the synthetic qwen3-test model (4 heads and 2
// key/value heads split over two ranks; it has a tokenizer, which the
// tiny test checkpoints lack) into dir/model and returns its path.
func writeShardableModel(t *testing.T, dir string) string {
	t.Helper()
	model := filepath.Join(dir, "model")
	spec, err := engine.LookupSynthetic("qwen3-test")
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.WriteSynthetic(context.Background(), model, spec, 1); err != nil {
		t.Fatal(err)
	}
	return model
}

// TestLockstepWorker is one rank of TestRunnerLockstepTwoProcesses.
func TestLockstepWorker(t *testing.T) {
	out := os.Getenv(lockstepEnv)
	if out == "" {
		t.Skip("run by TestRunnerLockstepTwoProcesses only")
	}
	ctx := context.Background()
	g, err := engine.InitDistributed(ctx)
	if err != nil || g == nil {
		t.Fatalf("joining the group: %v", err)
	}
	// Each rank its own cache dir, as on several hosts: rank 0's cached
	// preset vector (written after the first pirate run) is not on rank
	// 1's disk, and every rank must still take rank 0's path.
	t.Setenv("GENKIT_CACHE_DIR", filepath.Join(os.Getenv("GENKIT_CACHE_DIR"), fmt.Sprintf("rank%d", g.Rank())))
	m, err := engine.Load(ctx, os.Getenv(lockstepModelEnv), engine.LoadOptions{Group: g})
	if err != nil {
		t.Fatal(err)
	}
	// First as a CLI command runs: every rank decodes the same run itself.
	cliRun := deviceRun(t, m, 0)
	cliRun.Gen.Seed, cliRun.Gen.MaxNewTokens = nil, sampling.Ptr(24)
	cli := decoded(steering.Decode(ctx, m, cliRun, steering.Observers{}))
	extras, _ := cliExtras(t, m)
	if g.Rank() != 0 {
		var errs []string
		if err := steering.Follow(ctx, g, m, func(kind string, err error) { errs = append(errs, kind+": "+err.Error()) }); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("rank %d: followed; job errors: %v\n", g.Rank(), errs)
		return
	}
	lead := steering.NewLeader(g)
	r, c := newCollected(t, m, lead)
	settings := lockstepSettings()
	res := lockstepResults{Runs: map[string]lockstepRun{}, Device: map[string]lockstepRun{}, CLI: cli, Extras: extras}
	run := func(name string) { res.Runs[name] = outcome(c.wait(r.Start(settings[name]))) }
	run("first")
	// Start a long run, let it decode a few steps, then start the next:
	// the start cancels it mid-decode.
	long := r.Start(settings["cancelled"])
	seen := c.until("the long run to decode", func(s SnapshotMsg) bool { return s.RunID == long && (s.Steps >= 4 || s.Done) })
	res.Cancelled = seen.Steps
	rnd := r.Start(settings["random"])
	res.Runs["cancelled"] = outcome(c.wait(long))
	res.Runs["random"] = outcome(c.wait(rnd))
	run("sweep")
	run("long")
	run("refused")
	res.Runs["again"] = outcome(c.wait(r.Start(settings["first"])))

	// The device loop: cancelled by rank 0 at its fourth token of lane 0,
	// then stopped by rank 0's clock.
	cctx, cancel := context.WithCancel(ctx)
	stopAt := func(tk steering.Token) {
		if tk.Lane == 0 && tk.Step == 3 {
			cancel()
		}
	}
	res.Device["cancel"] = decoded(lead.Decode(cctx, m, deviceRun(t, m, 0), steering.Observers{Token: stopAt}))
	cancel()
	res.Device["time"] = decoded(lead.Decode(ctx, m, deviceRun(t, m, 0.2), steering.Observers{}))

	pairs, err := steering.TextPairs(m, lockstepTexts[0], lockstepTexts[1])
	if err != nil {
		t.Fatal(err)
	}
	ex, err := lead.Extract(ctx, m, pairs, steering.ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res.Made = ex.Vectors
	plan := steering.DefaultPlan()
	plan.Method = steering.MethodPCA
	rv, err := lead.Resolve(ctx, m, plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Resolved = rv.Vectors
	if err := lead.Quit(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := lead.Decode(ctx, m, settings["first"].Run(nil), steering.Observers{}); err == nil || !strings.Contains(err.Error(), steering.ErrLeaderQuit.Error()) {
		t.Errorf("a job after quit: %v, want %v", err, steering.ErrLeaderQuit)
	}
	data, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

package tui

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/engine/tokenizer"
	"github.com/mlx-genkit/genkit/mlx"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/steering"
)

// soakSample is the process's state after a number of runs.
type soakSample struct {
	Runs   int
	Tokens int   // tokens decoded so far, every lane
	Live   int64 // mlx.LiveArrays
	RSS    int64 // resident set size in bytes (0 where /proc is missing)
}

// rss reads the resident set size from /proc/self/statm (Linux).
func rss() int64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// soakOptions shape a soak: the runs' random settings draw from these.
type soakOptions struct {
	Runs, Every int
	MaxNew      int      // max_new_tokens is drawn from [1, MaxNew]
	Presets     []string // steering sources: presets ...
	Vector      string   // ... or this vector file when Presets is empty
	Layers      int
	Prompts     []string
	Chat        bool
	// afterRun, when set, is called after each run (a test's deliberate
	// leak shows the sampling sees one).
	afterRun func()
	// progress, when set, sees each sample as it is taken.
	progress func(soakSample)
}

// randomSettings draws one run's settings: steering source, layer (or
// auto), alpha, schedule, mode, scope, sampling or greedy, temperature,
// top-k/top-p, seed, lane sweep and length.
func randomSettings(rng *rand.Rand, o soakOptions) Settings {
	s := DefaultSettings()
	s.Prompt, s.Chat = o.Prompts[rng.Intn(len(o.Prompts))], o.Chat
	p := steering.DefaultPlan()
	if len(o.Presets) > 0 {
		p.Preset = o.Presets[rng.Intn(len(o.Presets))]
	} else {
		p.Preset, p.Vector = "", o.Vector
	}
	if rng.Intn(4) > 0 {
		l := rng.Intn(o.Layers)
		p.Layer = &l
	} else if p.Vector != "" {
		l := o.Layers / 2
		p.Layer = &l
	}
	a := float64(rng.Intn(121)-60) / 10
	p.Alpha = &a
	sched, err := steering.ParseSchedule(schedules[rng.Intn(len(schedules))])
	if err == nil {
		p.Schedule = sched
	}
	if rng.Intn(5) == 0 {
		p.Mode = steering.ModeLogitBias
	}
	p.Scope = []steering.Scope{steering.ScopeAll, "prompt", "generated"}[rng.Intn(3)]
	s.Steering = p
	s.Gen = sampling.GenerationConfig{Seed: sampling.Ptr(uint64(rng.Intn(1000))), MaxNewTokens: sampling.Ptr(1 + rng.Intn(o.MaxNew))}
	if rng.Intn(2) == 0 {
		s.Gen.DoSample = sampling.Ptr(true)
		s.Gen.Temperature = sampling.Ptr(0.3 + rng.Float64())
		s.Gen.TopK = sampling.Ptr(rng.Intn(60))
		s.Gen.TopP = sampling.Ptr(0.5 + rng.Float64()/2)
	} else {
		s.Gen.DoSample = sampling.Ptr(false)
	}
	s.Sweep = rng.Intn(6) == 0
	s.SharedDraws = rng.Intn(2) == 0
	return s
}

// soak makes o.Runs consecutive runs through the TUI's runner with random
// settings (one in eight started over a run still in flight, which the
// runner cancels, as a key press during a run does) and samples the live
// MLX arrays and RSS before the first run and every o.Every runs, with the
// runner idle.
func soak(tb testing.TB, m *engine.Model, o soakOptions) []soakSample {
	tb.Helper()
	msgs := make(chan tea.Msg, 4096)
	r := NewRunner(m, nil, func(msg tea.Msg) { msgs <- msg })
	defer r.Stop()
	rng := rand.New(rand.NewSource(1))
	tokens := 0
	waitDone := func(id int) {
		deadline := time.After(5 * time.Minute)
		for {
			select {
			case msg := <-msgs:
				if snap, ok := msg.(SnapshotMsg); ok && snap.Done && snap.RunID == id {
					if snap.Err != nil {
						tb.Fatalf("run %d: %v", id, snap.Err)
					}
					for _, l := range snap.Lanes {
						tokens += len(l.Tokens)
					}
					return
				}
			case <-deadline:
				tb.Fatalf("run %d did not finish in 5 minutes", id)
			}
		}
	}
	idle := func() {
		if !r.Wait(5 * time.Minute) {
			tb.Fatal("the runner did not go idle")
		}
		for len(msgs) > 0 {
			<-msgs
		}
	}
	sample := func(runs int) soakSample {
		var live int64
		_ = mlx.Do(context.Background(), func() error { live = mlx.LiveArrays(); return nil })
		return soakSample{Runs: runs, Tokens: tokens, Live: live, RSS: rss()}
	}
	out := []soakSample{sample(0)}
	for i := 1; i <= o.Runs; i++ {
		if rng.Intn(8) == 0 {
			r.Start(randomSettings(rng, o)) // superseded at once: cancelled
		}
		waitDone(r.Start(randomSettings(rng, o)))
		if o.afterRun != nil {
			o.afterRun()
		}
		if i%o.Every == 0 {
			idle()
			out = append(out, sample(i))
			if o.progress != nil {
				o.progress(out[len(out)-1])
			}
		}
	}
	return out
}

// tinyTokenizer is a word-level tokenizer whose 256 ids ("w0" .. "w255")
// fit the tiny model's vocabulary, so text prompts run on it.
func tinyTokenizer(t testing.TB) *tokenizer.Tokenizer {
	var vocab []string
	for i := 0; i < 256; i++ {
		vocab = append(vocab, fmt.Sprintf("%q:%d", "w"+strconv.Itoa(i), i))
	}
	js := `{"version":"1.0","added_tokens":[],"pre_tokenizer":{"type":"Whitespace"},"decoder":null,
"model":{"type":"WordLevel","vocab":{` + strings.Join(vocab, ",") + `},"unk_token":"w0"}}`
	tk, err := tokenizer.FromJSON([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// TestSoakLiveArraysReturn: after 50 runs through the runner with random
// setting changes on the tiny model, the number of live MLX arrays is back
// where it started (nothing a run makes outlives it).
func TestSoakLiveArraysReturn(t *testing.T) {
	if testing.Short() {
		t.Skip("soak")
	}
	m := loadTiny(t)
	m.Tokenizer = tinyTokenizer(t)
	vec := filepath.Join(t.TempDir(), "v.safetensors")
	vs := &steering.VectorSet{ModelHint: "llama", Vectors: map[int][]float32{}}
	rng := rand.New(rand.NewSource(3))
	for l := 0; l < 3; l++ {
		v := make([]float32, 64)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		vs.Vectors[l] = v
	}
	if err := vs.Save(vec); err != nil {
		t.Fatal(err)
	}
	o := soakOptions{Runs: 50, Every: 10, MaxNew: 12, Vector: vec, Layers: 3,
		Prompts: []string{"w1 w2 w3", "w9 w8 w7 w6 w5 w4", "w100"}}
	samples := soak(t, m, o)
	for _, s := range samples {
		t.Logf("after %3d runs (%5d tokens): %d live arrays, RSS %.1f MiB", s.Runs, s.Tokens, s.Live, float64(s.RSS)/(1<<20))
	}
	if last := samples[len(samples)-1]; last.Tokens < last.Runs {
		t.Fatalf("%d runs decoded only %d tokens", last.Runs, last.Tokens)
	}
	if first, last := samples[0], samples[len(samples)-1]; last.Live != first.Live {
		t.Fatalf("live MLX arrays %d before the runs, %d after %d runs", first.Live, last.Live, last.Runs)
	}
	// The same soak with one array leaked per run: the samples see it.
	var leaked []*mlx.Array
	o.Runs, o.Every = 5, 5
	o.afterRun = func() {
		_ = mlx.Do(context.Background(), func() error {
			a, err := mlx.Scalar(1, mlx.Float32)
			leaked = append(leaked, a)
			return err
		})
	}
	samples = soak(t, m, o)
	_ = mlx.Do(context.Background(), func() error { mlx.Free(leaked...); return nil })
	if d := samples[len(samples)-1].Live - samples[0].Live; d != 5 {
		t.Fatalf("5 leaked arrays seen as %d", d)
	}
}

// BenchmarkSoak: 500 consecutive runs on the default model with random
// setting changes, live arrays and RSS sampled every 50 runs (run it once:
// -bench Soak -benchtime 1x; docs/reliability.md has the numbers).
// GENKIT_SOAK_RUNS and GENKIT_SOAK_MAX_NEW change the length.
func BenchmarkSoak(b *testing.B) {
	m := loadDefault(b)
	runs, maxNew := 500, 8
	if v, err := strconv.Atoi(os.Getenv("GENKIT_SOAK_RUNS")); err == nil && v > 0 {
		runs = v
	}
	if v, err := strconv.Atoi(os.Getenv("GENKIT_SOAK_MAX_NEW")); err == nil && v > 0 {
		maxNew = v
	}
	o := soakOptions{Runs: runs, Every: max(1, runs/10), MaxNew: maxNew, Layers: m.NumLayers(), Chat: true,
		Presets: []string{"pirate", "formal", "terse", "cheerful"},
		Prompts: []string{"Tell me about the ocean.", "Describe a rainy day.", "What is a good breakfast?"}}
	start := time.Now()
	o.progress = func(s soakSample) {
		fmt.Fprintf(os.Stderr, "soak: %d runs, %d tokens, %d live arrays, RSS %.1f MiB, %s\n",
			s.Runs, s.Tokens, s.Live, float64(s.RSS)/(1<<20), time.Since(start).Round(time.Second))
	}
	for b.Loop() {
		start = time.Now()
		samples := soak(b, m, o)
		b.Logf("%d runs in %s (max_new_tokens 1..%d)", runs, time.Since(start).Round(time.Second), maxNew)
		for _, s := range samples {
			b.Logf("| %d | %d | %d | %.1f |", s.Runs, s.Tokens, s.Live, float64(s.RSS)/(1<<20))
		}
		first, last := samples[0], samples[len(samples)-1]
		b.ReportMetric(float64(last.Live-first.Live), "live-arrays-delta")
		b.ReportMetric(float64(last.RSS-first.RSS)/(1<<20), "rss-MiB-delta")
	}
}

package tui

import (
	"context"
	"math"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/steering"
)

// snapshotInterval caps how often a running generation reaches the UI.
const snapshotInterval = time.Second / 30

// Alt is one alternative token with its probability.
type Alt struct {
	Token string
	Prob  float64
}

// Lane is one lane's output so far.
type Lane struct {
	Tokens []int
	Pieces []string  // decoded text of each token (whole characters)
	Proj   []float32 // projection on the persona vector per token (steered lanes)
	Top    [][]Alt   // top alternatives per token
}

// Text is the lane's text.
func (l Lane) Text() string {
	n := 0
	for _, p := range l.Pieces {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range l.Pieces {
		b = append(b, p...)
	}
	return string(b)
}

// SnapshotMsg is a run's state, sent at most 30 times a second; the final
// one has Done set.
type SnapshotMsg struct {
	RunID     int
	Lanes     []Lane
	KL        []float64 // per step KL(base || steered lane 1)
	Steps     int
	Elapsed   time.Duration
	Done      bool
	Finished  string
	Err       error
	Layer     int     // resolved steering layer
	Alpha     float64 // resolved alpha
	Seed      uint64  // the seed the lanes' streams derive from
	Separated map[int]float64
	// Labels title the steered lanes of a sweep over a control other than
	// alpha (sweep.go), one per steered lane; nil otherwise.
	Labels []string
}

// TokensPerSecond is the decode rate of one lane.
func (s SnapshotMsg) TokensPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Steps) / s.Elapsed.Seconds()
}

// FirstDiff is the first step where base and steered lane 1 differ (-1 if
// none).
func (s SnapshotMsg) FirstDiff() int {
	if len(s.Lanes) < 2 {
		return -1
	}
	a, b := s.Lanes[0].Tokens, s.Lanes[1].Tokens
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// ProgressMsg reports vector computation progress.
type ProgressMsg struct {
	RunID       int
	What        string
	Done, Total int
}

// Runner decodes in the background. Start cancels the run in flight.
type Runner struct {
	m *engine.Model
	// lead runs each decode (on every rank of a sharded model).
	lead   *steering.Leader
	send   func(tea.Msg)
	mu     sync.Mutex
	cancel context.CancelFunc
	nextID int
	wg     sync.WaitGroup
}

// NewRunner makes a runner for m that decodes through lead (nil: here
// alone; see steering.Leader) and reports through send (Program.Send).
func NewRunner(m *engine.Model, lead *steering.Leader, send func(tea.Msg)) *Runner {
	return &Runner{m: m, lead: lead, send: send}
}

// Start begins a run with s and returns its id.
func (r *Runner) Start(s Settings) int {
	return r.launch(func(ctx context.Context, id int) { r.run(ctx, id, s) })
}

// launch cancels the run in flight and starts work as the next run in its
// own goroutine, returning the run's id.
func (r *Runner) launch(work func(ctx context.Context, id int)) int {
	r.mu.Lock()
	if r.cancel != nil {
		r.cancel()
	}
	r.nextID++
	id := r.nextID
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		work(ctx, id)
	}()
	return id
}

// Cancel cancels the run in flight and returns at once.
func (r *Runner) Cancel() {
	r.mu.Lock()
	if r.cancel != nil {
		r.cancel()
	}
	r.mu.Unlock()
}

// Wait waits up to d for runs to end and reports whether they did.
func (r *Runner) Wait(d time.Duration) bool {
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// Stop cancels the run in flight and waits for it.
func (r *Runner) Stop() {
	r.mu.Lock()
	if r.cancel != nil {
		r.cancel()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// runState is shared between the MLX thread and the snapshot ticker.
type runState struct {
	mu    sync.Mutex
	snap  SnapshotMsg
	dirty bool
	start time.Time
}

func (st *runState) copy() SnapshotMsg {
	s := st.snap
	s.Lanes = make([]Lane, len(st.snap.Lanes))
	for i, l := range st.snap.Lanes {
		s.Lanes[i] = Lane{Tokens: append([]int(nil), l.Tokens...), Pieces: append([]string(nil), l.Pieces...),
			Proj: append([]float32(nil), l.Proj...), Top: append([][]Alt(nil), l.Top...)}
	}
	s.KL = append([]float64(nil), st.snap.KL...)
	return s
}

// run decodes s through steering.Decode (the one steered run the CLI uses
// too; run by the runner's Leader) and turns its observations into
// snapshots.
func (r *Runner) run(ctx context.Context, id int, s Settings) {
	st := &runState{snap: SnapshotMsg{RunID: id}}
	finish := func(err error, why string) {
		st.mu.Lock()
		st.snap.Done, st.snap.Err, st.snap.Finished = true, err, why
		snap := st.copy()
		st.mu.Unlock()
		r.send(snap)
	}
	m := r.m
	gen, err := steering.Generation(m, &s.Gen)
	if err != nil {
		finish(err, "error")
		return
	}
	run := s.Run(gen)
	st.snap.Lanes = make([]Lane, len(run.LaneScales))
	var baseScores []float32
	obs := steering.Observers{
		Progress: func(what string, done, total int) {
			r.send(ProgressMsg{RunID: id, What: what, Done: done, Total: total})
		},
		Resolved: func(res *steering.Resolved) {
			st.mu.Lock()
			st.snap.Layer, st.snap.Separated, st.snap.Alpha = res.Layer, res.Separation, res.Alpha
			st.start = time.Now()
			st.mu.Unlock()
		},
		Scores: func(lane, step int, scores []float32) {
			top := topAlts(m, scores, 5)
			st.mu.Lock()
			l := &st.snap.Lanes[lane]
			l.Top = append(l.Top, top)
			st.mu.Unlock()
			if lane == 0 {
				baseScores = append(baseScores[:0], scores...)
			} else if lane == 1 && baseScores != nil {
				kl := klDiv(baseScores, scores)
				st.mu.Lock()
				st.snap.KL = append(st.snap.KL, kl)
				st.mu.Unlock()
			}
		},
		Token: func(t steering.Token) {
			st.mu.Lock()
			l := &st.snap.Lanes[t.Lane]
			l.Tokens = append(l.Tokens, t.ID)
			l.Pieces = append(l.Pieces, t.Piece)
			l.Proj = append(l.Proj, t.Proj)
			if t.Lane == 0 {
				st.snap.Steps++
				st.snap.Elapsed = time.Since(st.start)
			}
			st.dirty = true
			st.mu.Unlock()
		},
	}
	// Snapshots at most 30 times a second.
	tick := time.NewTicker(snapshotInterval)
	stopTick := make(chan struct{})
	tickDone := make(chan struct{})
	go func() {
		defer close(tickDone)
		for {
			select {
			case <-stopTick:
				return
			case <-tick.C:
				st.mu.Lock()
				if !st.dirty {
					st.mu.Unlock()
					continue
				}
				st.dirty = false
				snap := st.copy()
				st.mu.Unlock()
				r.send(snap)
			}
		}
	}()
	out, err := r.lead.Decode(ctx, m, run, obs)
	tick.Stop()
	close(stopTick)
	<-tickDone
	why := "done"
	if err == nil && len(out.Lanes) > 0 {
		why = out.Lanes[0].Finished
		if len(out.Lanes) > 1 && out.Lanes[1].Finished != why {
			why += "/" + out.Lanes[1].Finished
		}
		st.mu.Lock()
		st.snap.Seed = out.Seed
		st.mu.Unlock()
	}
	if ctx.Err() != nil {
		why = "cancelled"
	}
	st.mu.Lock()
	if !st.start.IsZero() {
		st.snap.Elapsed = time.Since(st.start)
	}
	st.mu.Unlock()
	finish(err, why)
}

// topAlts returns the k most probable tokens of processed scores, in one
// pass over the vocabulary.
func topAlts(m *engine.Model, scores []float32, k int) []Alt {
	mx := float32(math.Inf(-1))
	for _, s := range scores {
		if s > mx {
			mx = s
		}
	}
	if math.IsInf(float64(mx), -1) {
		return nil
	}
	var z float64
	top := make([]int, 0, k+1)
	for i, s := range scores {
		if math.IsInf(float64(s), -1) {
			continue
		}
		z += math.Exp(float64(s - mx))
		if len(top) < k || s > scores[top[len(top)-1]] {
			j := len(top)
			if len(top) < k {
				top = append(top, i)
			} else {
				j = k - 1
			}
			for j > 0 && scores[top[j-1]] < s {
				top[j] = top[j-1]
				j--
			}
			top[j] = i
		}
	}
	out := make([]Alt, 0, len(top))
	for _, i := range top {
		out = append(out, Alt{Token: m.TokenText(i), Prob: math.Exp(float64(scores[i]-mx)) / z})
	}
	return out
}

// klDiv is KL(P || Q) between the softmaxes of two score vectors.
func klDiv(a, b []float32) float64 {
	p, q := sampling.Softmax(a), sampling.Softmax(b)
	var kl float64
	for i := range p {
		if p[i] > 0 {
			if q[i] <= 0 {
				return math.Inf(1)
			}
			kl += p[i] * math.Log(p[i]/q[i])
		}
	}
	return kl
}

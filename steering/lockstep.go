package steering

// Lockstep: a front end that drives a tensor-parallel model (genkit launch)
// runs on rank 0 and hands every piece of model work it does (a job) to the
// other ranks, which follow: each job is broadcast, then run on every rank
// at once, so every rank enters the same collectives in the same order.
// The terminal UI runs this way (docs/distributed.md).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
)

// The kinds of job.
const (
	jobDecode  = "decode"  // Decode of a Run
	jobExtract = "extract" // Extract from pairs
	jobResolve = "resolve" // Resolve of a Plan
	jobQuit    = "quit"    // the followers return
)

// job is one piece of model work: its kind and everything that determines
// it (nothing random or host-dependent: rank 0 decides those and sends
// them).
type job struct {
	Kind string `json:"kind"`
	// Run is a decode's run, its generation settings layered and its seed
	// set.
	Run *Run `json:"run,omitempty"`
	// Pairs and Extract are an extraction's inputs.
	Pairs   []Pair          `json:"pairs,omitempty"`
	Extract *ExtractOptions `json:"extract,omitempty"`
	// Plan is what a resolve resolves.
	Plan *Plan `json:"plan,omitempty"`
	// Observe says which observers rank 0 runs with: the followers run
	// no-op ones in their place, so every rank takes the same path (a
	// Scores observer makes the run sample on the host, for one).
	Observe observed `json:"observe"`
}

// observed records which observers are set.
type observed struct {
	Progress, Resolved, Token, Scores bool
}

// observedOf records which of obs are set.
func observedOf(obs Observers) observed {
	return observed{Progress: obs.Progress != nil, Resolved: obs.Resolved != nil, Token: obs.Token != nil, Scores: obs.Scores != nil}
}

// observers are no-op observers in the places o records.
func (o observed) observers() Observers {
	var obs Observers
	if o.Progress {
		obs.Progress = func(string, int, int) {}
	}
	if o.Resolved {
		obs.Resolved = func(*Resolved) {}
	}
	if o.Token {
		obs.Token = func(Token) {}
	}
	if o.Scores {
		obs.Scores = func(int, int, []float32) {}
	}
	return obs
}

// progress is a no-op progress callback when o records one.
func (o observed) progress() func(done, total int) {
	if !o.Progress {
		return nil
	}
	return func(int, int) {}
}

// ErrLeaderQuit is returned for a job asked of a Leader after Quit.
var ErrLeaderQuit = errors.New("the followers were told to quit")

// Leader runs a front end's model work. With a group of several ranks (it
// must be rank 0 of it, the model sharded over the group) each job is first
// broadcast to the ranks in Follow, then run on this rank: the job takes
// the MLX thread from the broadcast to its end, so jobs reach every rank
// in the same order, and rank 0's ctx and deadline stop every rank at the
// same step (engine.Model.Stopped). Without a group (nil Leader, nil or
// one-rank group) the work runs here alone, as the functions it wraps run
// it.
type Leader struct {
	g    *engine.DistGroup
	mu   sync.Mutex
	quit bool
}

// NewLeader leads the ranks of g (nil: none).
func NewLeader(g *engine.DistGroup) *Leader { return &Leader{g: g} }

// leads reports whether l has ranks to lead.
func (l *Leader) leads() bool { return l != nil && l.g.Size() > 1 }

// lead runs j on m with rank 0's observers: at once without a group;
// with one, broadcast first on the MLX thread, which the job (as the
// followers decode it) then keeps to its end. A job whose ctx is done
// before it starts is dropped unseen.
func (l *Leader) lead(ctx context.Context, m *engine.Model, j job, obs Observers, progress func(done, total int)) (jobResult, error) {
	if !l.leads() {
		if m.Ranks() > 1 {
			return jobResult{}, fmt.Errorf("%s: the model is sharded over %d ranks and no leader drives them", j.Kind, m.Ranks())
		}
		return j.exec(ctx, m, obs, progress)
	}
	if l.g.Rank() != 0 {
		return jobResult{}, fmt.Errorf("%s: rank %d cannot lead (rank 0 does; the others follow)", j.Kind, l.g.Rank())
	}
	if m.Ranks() != l.g.Size() {
		return jobResult{}, fmt.Errorf("%s: the model is sharded over %d ranks, the group has %d", j.Kind, m.Ranks(), l.g.Size())
	}
	data, err := json.Marshal(j)
	if err != nil {
		return jobResult{}, fmt.Errorf("%s job: %w", j.Kind, err)
	}
	// This rank runs what the followers will decode, to the bit.
	sent, err := decodeJob(data)
	if err != nil {
		return jobResult{}, err
	}
	var res jobResult
	err = mlx.Do(context.Background(), func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		l.mu.Lock()
		quit := l.quit
		l.mu.Unlock()
		if quit {
			return fmt.Errorf("%s: %w", j.Kind, ErrLeaderQuit)
		}
		if _, err := mlx.BroadcastBytes(l.g, 0, data); err != nil {
			return fmt.Errorf("sending the %s job to the ranks: %w", j.Kind, err)
		}
		var err error
		res, err = sent.exec(ctx, m, obs, progress)
		return err
	})
	return res, err
}

// jobResult is what a job gives: one field, by its kind.
type jobResult struct {
	out *Outcome
	ex  *Extraction
	r   *Resolved
}

// exec runs j on m: the one function rank 0 and the followers run for a
// job. obs are a decode's observers, progress an extraction's or a
// resolve's.
func (j job) exec(ctx context.Context, m *engine.Model, obs Observers, progress func(done, total int)) (jobResult, error) {
	var res jobResult
	var err error
	switch j.Kind {
	case jobDecode:
		res.out, err = Decode(ctx, m, *j.Run, obs)
	case jobExtract:
		o := *j.Extract
		o.Progress = progress
		res.ex, err = Extract(ctx, m, j.Pairs, o)
	case jobResolve:
		res.r, err = Resolve(ctx, m, *j.Plan, progress)
	default:
		err = fmt.Errorf("lockstep: a %s job runs nothing", j.Kind)
	}
	return res, err
}

// Decode is steering's Decode of run on m, on every rank. With ranks to
// lead, the run's generation settings are layered (Generation) here first;
// an unset seed is rank 0's on every rank (decodeLanes, as for any run on
// a sharded model).
func (l *Leader) Decode(ctx context.Context, m *engine.Model, run Run, obs Observers) (*Outcome, error) {
	if l.leads() && run.Gen == nil {
		cfg, err := Generation(m)
		if err != nil {
			return nil, err
		}
		run.Gen = cfg
	}
	res, err := l.lead(ctx, m, job{Kind: jobDecode, Run: &run, Observe: observedOf(obs)}, obs, nil)
	return res.out, err
}

// Extract is steering's Extract of pairs on m, on every rank.
func (l *Leader) Extract(ctx context.Context, m *engine.Model, pairs []Pair, opts ExtractOptions) (*Extraction, error) {
	spec := opts
	spec.Progress = nil
	j := job{Kind: jobExtract, Pairs: pairs, Extract: &spec, Observe: observed{Progress: opts.Progress != nil}}
	res, err := l.lead(ctx, m, j, Observers{}, opts.Progress)
	return res.ex, err
}

// Resolve is steering's Resolve of p on m, on every rank (a preset's
// vector may be computed).
func (l *Leader) Resolve(ctx context.Context, m *engine.Model, p Plan, progress func(done, total int)) (*Resolved, error) {
	res, err := l.lead(ctx, m, job{Kind: jobResolve, Plan: &p, Observe: observed{Progress: progress != nil}}, Observers{}, progress)
	return res.r, err
}

// Quit tells the followers to return and refuses later jobs. It waits up to
// d for the job in flight (cancel it first) to free the MLX thread; after
// that the followers are left waiting (genkit launch stops them when rank
// 0 exits). Without ranks to lead it does nothing.
func (l *Leader) Quit(d time.Duration) error {
	if !l.leads() {
		return nil
	}
	l.mu.Lock()
	already := l.quit
	l.quit = true
	l.mu.Unlock()
	if already {
		return nil
	}
	data, err := json.Marshal(job{Kind: jobQuit})
	if err != nil {
		return fmt.Errorf("quit job: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	err = mlx.Do(ctx, func() error {
		_, err := mlx.BroadcastBytes(l.g, 0, data)
		return err
	})
	if err != nil {
		return fmt.Errorf("telling the ranks to quit: %w", err)
	}
	return nil
}

// decodeJob reads a broadcast job.
func decodeJob(data []byte) (job, error) {
	var j job
	if err := json.Unmarshal(data, &j); err != nil {
		return j, fmt.Errorf("lockstep job: %w", err)
	}
	bad := false
	switch j.Kind {
	case jobDecode:
		bad = j.Run == nil
	case jobExtract:
		bad = j.Extract == nil
	case jobResolve:
		bad = j.Plan == nil
	case jobQuit:
	default:
		return j, fmt.Errorf("lockstep job: unknown kind %q", j.Kind)
	}
	if bad {
		return j, fmt.Errorf("lockstep job: a %s job without its inputs", j.Kind)
	}
	return j, nil
}

// followGrace is how long Follow keeps following after its ctx is done
// (genkit launch signals every rank at once: rank 0 may still send quit).
const followGrace = 2 * time.Second

// Follow is the loop of a rank other than 0 while rank 0 leads (Leader):
// it receives each job and runs it on m, this rank's shard, with no-op
// observers where rank 0 has observers, until the quit job. A job that
// fails here fails on rank 0 too (the same inputs): it is passed to onErr
// (nil: dropped) and the loop goes on. It returns nil after quit, an error
// when the group fails, or ctx's error followGrace after ctx is done (the
// MLX thread may then still wait for rank 0; the process should exit).
func Follow(ctx context.Context, g *engine.DistGroup, m *engine.Model, onErr func(kind string, err error)) error {
	if g.Size() < 2 || g.Rank() == 0 {
		return fmt.Errorf("follow: %v does not follow rank 0", g)
	}
	if m.Ranks() != g.Size() {
		return fmt.Errorf("follow: the model is sharded over %d ranks, the group has %d", m.Ranks(), g.Size())
	}
	done := make(chan error, 1)
	go func() { done <- follow(g, m, onErr) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-done:
		return err
	case <-time.After(followGrace):
		return fmt.Errorf("follow: %w", ctx.Err())
	}
}

// follow receives and runs jobs until quit.
func follow(g *engine.DistGroup, m *engine.Model, onErr func(kind string, err error)) error {
	for {
		quit := false
		err := mlx.Do(context.Background(), func() error {
			data, err := mlx.BroadcastBytes(g, 0, nil)
			if err != nil {
				return fmt.Errorf("follow: receiving a job: %w", err)
			}
			j, err := decodeJob(data)
			if err != nil {
				return fmt.Errorf("follow: %w", err)
			}
			if j.Kind == jobQuit {
				quit = true
				return nil
			}
			// No ctx of its own: rank 0's decides when the job stops.
			if _, err := j.exec(context.Background(), m, j.Observe.observers(), j.Observe.progress()); err != nil && onErr != nil {
				onErr(j.Kind, err)
			}
			return nil
		})
		if err != nil || quit {
			return err
		}
	}
}

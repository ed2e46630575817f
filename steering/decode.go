package steering

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/sampling"
)

// DefaultMaxNewTokens is how many tokens a lane may generate when neither
// the model's generation_config.json nor the user says (max_new_tokens and
// max_length both unset).
const DefaultMaxNewTokens = 64

// Generation layers generation settings the way every front end does: the
// model's generation_config.json (for a model folder), then each layer in
// order (only the fields a layer sets change), then DefaultMaxNewTokens
// where no length is set and the model's EOS ids where none are. The result
// is validated.
func Generation(m *engine.Model, layers ...*sampling.GenerationConfig) (*sampling.GenerationConfig, error) {
	cfg := &sampling.GenerationConfig{}
	if st, err := os.Stat(m.Source); err == nil && st.IsDir() {
		p := filepath.Join(m.Source, "generation_config.json")
		if data, err := os.ReadFile(p); err == nil {
			if err := cfg.Merge(data); err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
		}
	}
	for _, l := range layers {
		if l == nil {
			continue
		}
		data, err := json.Marshal(l)
		if err != nil {
			return nil, fmt.Errorf("generation settings: %w", err)
		}
		if err := cfg.Merge(data); err != nil {
			return nil, fmt.Errorf("generation settings: %w", err)
		}
	}
	if cfg.MaxNewTokens == nil && cfg.MaxLength == nil {
		cfg.MaxNewTokens = sampling.Ptr(DefaultMaxNewTokens)
	}
	if len(cfg.EOSTokenID) == 0 && m.Tokenizer != nil {
		cfg.EOSTokenID = m.Tokenizer.EOS
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Lanes are the alpha multipliers of a run's lanes: lane 0 is the base
// (multiplier 0), the others are steered.
var (
	// PairLanes is base and steered.
	PairLanes = []float64{0, 1}
	// SweepLanes is the base and four steered lanes at 0.5, 1, 1.5 and 2
	// times alpha.
	SweepLanes = []float64{0, 0.5, 1, 1.5, 2}
)

// Run is one decode: a prompt in a base lane and steered lanes at once.
type Run struct {
	// Prompt is what is decoded.
	Prompt engine.Prompt
	// Plan is the steering; nil (and no Steering) decodes one unsteered
	// lane.
	Plan *Plan
	// Steering, when set, is steering already resolved (Fixed, or an earlier
	// Resolve) and Plan is ignored.
	Steering *Resolved
	// Gen are the generation settings, as layered by Generation.
	Gen *sampling.GenerationConfig
	// LaneScales are the lanes' alpha multipliers (nil: PairLanes).
	LaneScales []float64
	// SharedDraws makes every lane use the same random number at a step.
	SharedDraws bool
	// IgnoreEOS keeps lanes going past end-of-sequence tokens.
	IgnoreEOS bool
	// Sync reads every step's scores on the host instead of pipelining the
	// steps on the device (for benchmarks that compare the two).
	Sync bool
}

// Token is one new token of one lane, as it is decoded.
type Token struct {
	Lane, Step, ID int
	// Piece is the text the token completes (whole characters only, so it
	// may be empty and the next piece longer).
	Piece string
	// Proj is the lane's hidden state at the first steered block projected
	// on the unit steering direction (residual mode; 0 otherwise).
	Proj float32
}

// Observers watch a run; every one is optional. They are called on the MLX
// thread and must return quickly.
type Observers struct {
	// Progress reports a preset's vector being computed (first use only).
	Progress func(what string, done, total int)
	// Resolved is called once the plan is resolved, before decoding.
	Resolved func(*Resolved)
	// Token is called for each new token of each running lane.
	Token func(Token)
	// Scores sees each lane's processed scores before the choice (it makes
	// the run use the host sampler).
	Scores func(lane, step int, scores []float32)
}

// Lane is one lane's outcome.
type Lane struct {
	Tokens   []int
	Text     string
	Finished string // eos, stop, length, time or cancelled
}

// Outcome is a finished run.
type Outcome struct {
	// Prompt are the prompt's token ids.
	Prompt []int
	// Lanes are the lanes in order (lane 0 is the base); with beam search,
	// the returned hypotheses, best first.
	Lanes []Lane
	// Scores are the beams' scores (beam search only).
	Scores []float64
	// Steering is the resolved plan (nil when unsteered).
	Steering *Resolved
	// Seed is the seed the lanes' random streams derive from.
	Seed  uint64
	Stats engine.Stats
	// Gen are the settings the run used.
	Gen *sampling.GenerationConfig
}

// Decode is the one steered run every front end calls: it encodes the
// prompt, resolves the plan, builds the sampler (with the logit bias on the
// steered lanes), the stop strings, the deadline and the hooks, decodes all
// lanes at once and reports tokens as they come. ctx cancels it between
// steps; a cancelled run returns what it has with lanes marked "cancelled".
func Decode(ctx context.Context, m *engine.Model, run Run, obs Observers) (*Outcome, error) {
	cfg := run.Gen
	if cfg == nil {
		var err error
		if cfg, err = Generation(m); err != nil {
			return nil, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ids, err := m.EncodePrompt(run.Prompt)
	if err != nil {
		return nil, err
	}
	if err := m.Config.CheckContext(len(ids), cfg.MaxNew(len(ids))); err != nil {
		return nil, err
	}
	out := &Outcome{Prompt: ids, Gen: cfg}
	steered := run.Plan != nil || run.Steering != nil
	if cfg.Beams() > 1 && steered {
		return nil, fmt.Errorf("beam search with steering is not supported: set num_beams to 1")
	}
	scales := []float64{0}
	var steer Steer
	if steered {
		scales = run.LaneScales
		if scales == nil {
			scales = PairLanes
		}
		r := run.Steering
		if r == nil {
			var progress func(done, total int)
			if obs.Progress != nil {
				progress = func(done, total int) { obs.Progress("computing the "+run.Plan.Source()+" vector", done, total) }
			}
			if r, err = Resolve(ctx, m, *run.Plan, progress); err != nil {
				return nil, err
			}
		}
		out.Steering = r
		if err := m.Stopped(ctx); err != nil {
			return nil, err
		}
		if obs.Resolved != nil {
			obs.Resolved(r)
		}
		if steer, err = r.Build(m, scales); err != nil {
			return nil, err
		}
		defer steer.Close()
	}
	if cfg.Beams() > 1 {
		return out, decodeBeams(ctx, m, cfg, ids, out)
	}
	lanes, seed, stats, err := decodeLanes(ctx, m, ids, cfg, steer, len(scales), laneOptions{shared: run.SharedDraws, ignoreEOS: run.IgnoreEOS, sync: run.Sync}, obs)
	out.Lanes, out.Seed, out.Stats = lanes, seed, stats
	if err != nil {
		return nil, err
	}
	return out, nil
}

// decodeLanes decodes ids in n lanes with built steering: the sampler (the
// logit bias on the steered lanes), stop strings, deadline and hook.
func decodeLanes(ctx context.Context, m *engine.Model, ids []int, cfg *sampling.GenerationConfig, steer Steer, n int,
	lo laneOptions, obs Observers) ([]Lane, uint64, engine.Stats, error) {
	if cfg.Seed == nil && m.Ranks() > 1 {
		// Each rank of a sharded model would draw its own: take rank 0's.
		seed, err := m.RankZeroSeed(sampling.DrawSeed())
		if err != nil {
			return nil, 0, engine.Stats{}, err
		}
		c := *cfg
		c.Seed = &seed
		cfg = &c
	}
	sampler, err := sampling.NewSampler(cfg, n, sampling.SamplerOptions{SharedDraws: lo.shared, LaneExtra: steer.laneExtra})
	if err != nil {
		return nil, 0, engine.Stats{}, err
	}
	if obs.Scores != nil {
		sampler.Observe = obs.Scores
	}
	req := engine.Request{Prompt: ids, Lanes: n, MaxNewTokens: cfg.MaxNew(len(ids)), IgnoreEOS: lo.ignoreEOS,
		Chooser: sampler, EOS: cfg.EOSTokenID, Deadline: cfg.Deadline(time.Now()), Sync: lo.sync}
	if steer.Injection != nil {
		req.Hook = steer.Injection
	}
	if m.Tokenizer != nil && len(cfg.StopStrings) > 0 {
		req.Stop = sampling.StopStrings(m.Tokenizer, cfg.StopStrings)
	}
	if obs.Token != nil {
		req.OnToken = tokenReporter(m, n, steer, obs.Token)
	}
	res, stats, err := m.Generate(ctx, req)
	if err != nil {
		return nil, sampler.Seed(), stats, err
	}
	lanes := make([]Lane, 0, len(res))
	for _, r := range res {
		lanes = append(lanes, Lane{Tokens: nonNil(r.Tokens), Text: m.DecodeText(r.Tokens), Finished: r.Finished})
	}
	return lanes, sampler.Seed(), stats, nil
}

// laneOptions are decodeLanes' switches.
type laneOptions struct{ shared, ignoreEOS, sync bool }

func nonNil(ids []int) []int {
	if ids == nil {
		return []int{}
	}
	return ids
}

// tokenReporter streams each lane's tokens as text pieces with the lane's
// projection on the steering direction.
func tokenReporter(m *engine.Model, lanes int, steer Steer, report func(Token)) func(lane, id int) {
	type stream interface{ Add(int) string }
	streams := make([]stream, lanes)
	if m.Tokenizer != nil {
		for i := range streams {
			streams[i] = m.Tokenizer.NewStream(true)
		}
	}
	steps := make([]int, lanes)
	var projs []float32 // this step's projections, read once (lane 0 comes first)
	return func(lane, id int) {
		if lane == 0 && steer.Injection != nil {
			projs, _ = steer.Injection.Projections()
		}
		t := Token{Lane: lane, Step: steps[lane], ID: id}
		steps[lane]++
		if lane < len(projs) {
			t.Proj = projs[lane]
		}
		if streams[lane] != nil {
			t.Piece = streams[lane].Add(id)
		}
		report(t)
	}
}

// decodeBeams runs beam search (unsteered: the beams are hypotheses of one
// sequence, so there is no base lane to compare with).
func decodeBeams(ctx context.Context, m *engine.Model, cfg *sampling.GenerationConfig, ids []int, out *Outcome) error {
	bs, err := sampling.NewBeamSearch(cfg, cfg.EOSTokenID, len(ids))
	if err != nil {
		return err
	}
	_, stats, err := m.Generate(ctx, engine.Request{Prompt: ids, Lanes: bs.Lanes(), MaxNewTokens: cfg.MaxNew(len(ids)), Chooser: bs,
		Deadline: cfg.Deadline(time.Now())})
	out.Stats = stats
	if err != nil {
		return err
	}
	if err := m.Stopped(ctx); err != nil {
		return err
	}
	for _, b := range bs.Beams() {
		out.Lanes = append(out.Lanes, Lane{Tokens: nonNil(b.Tokens), Text: m.DecodeText(b.Tokens), Finished: "beam"})
		out.Scores = append(out.Scores, b.Score)
	}
	return nil
}

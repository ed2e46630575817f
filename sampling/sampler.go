package sampling

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/mlx-genkit/genkit/mlx"
)

// ErrInvalidLogits is returned when a lane's logits hold NaN or every token
// was removed, as happens when steering is far too strong.
// It is mlx.ErrInvalidLogits, the engine's error too, so errors.Is works
// whichever path chose.
var ErrInvalidLogits = mlx.ErrInvalidLogits

// Sampler chooses the next token of every lane: it runs the processor chain
// on the lane's logits, then takes the argmax (greedy) or draws from the
// softmax with the lane's own random stream. It implements engine.Chooser.
type Sampler struct {
	cfg         *GenerationConfig
	eos         []int
	lanes       int
	seed        uint64
	sharedDraws bool
	extra       []Processor
	laneExtra   func(lane int) []Processor
	chains      []Chain
	rngs        []*rand.Rand
	promptLen   int
	scores      []float32
	dev         *deviceRun
	// Observe, when set, sees each lane's processed scores after every step
	// (the slice is reused: copy what you keep).
	Observe func(lane, step int, scores []float32)
}

// SamplerOptions configure a Sampler beyond its GenerationConfig.
type SamplerOptions struct {
	// EOS ids (the config's eos_token_id when empty).
	EOS []int
	// SharedDraws makes every lane use the same uniform number at each step
	// (lane 0's stream), so lanes differ only through their logits.
	SharedDraws bool
	// Extra processors run for every lane as custom processors.
	Extra []Processor
	// LaneExtra adds per-lane custom processors (steering's logit bias on
	// the steered lanes only); nil for none.
	LaneExtra func(lane int) []Processor
}

// NewSampler makes a sampler for lanes lanes. An unset seed is drawn from the
// clock; Seed reports it so a run can be replayed.
func NewSampler(cfg *GenerationConfig, lanes int, opts SamplerOptions) (*Sampler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("generation config: %w", err)
	}
	s := &Sampler{cfg: cfg, eos: opts.EOS, lanes: lanes, sharedDraws: opts.SharedDraws,
		extra: opts.Extra, laneExtra: opts.LaneExtra}
	if len(s.eos) == 0 {
		s.eos = cfg.EOSTokenID
	}
	if cfg.Seed != nil {
		s.seed = *cfg.Seed
	} else {
		s.seed = DrawSeed()
	}
	s.rngs = make([]*rand.Rand, lanes)
	for b := range s.rngs {
		s.rngs[b] = LaneRand(s.seed, b)
	}
	return s, nil
}

// DrawSeed is the seed a run with an unset seed uses: drawn from the clock.
// A front end that must know the seed before the run (to hand the same
// run to other processes) draws it here and sets it.
func DrawSeed() uint64 { return uint64(time.Now().UnixNano()) }

// LaneRand is lane's random stream for seed: PCG keyed by (seed, lane), so
// lanes never share draws and every process gets the same numbers.
func LaneRand(seed uint64, lane int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15*uint64(lane+1)))
}

// Seed is the seed in use.
func (s *Sampler) Seed() uint64 { return s.seed }

// EOS is the list of end ids the sampler's processors use.
func (s *Sampler) EOS() []int { return s.eos }

// Chain is lane's processor chain (built on the first step).
func (s *Sampler) Chain(lane int) Chain {
	if lane < len(s.chains) {
		return s.chains[lane]
	}
	return nil
}

// build prepares the chains and restarts the random streams, so a sampler
// reused for a new generation draws the same numbers again.
func (s *Sampler) build(promptLen int) {
	s.promptLen = promptLen
	s.resetDraws()
	s.chains = make([]Chain, s.lanes)
	for b := range s.chains {
		s.chains[b] = BuildChain(s.cfg, s.eos, promptLen, s.extraFor(b)...)
	}
}

// resetDraws restarts the lanes' random streams.
func (s *Sampler) resetDraws() {
	for b := range s.rngs {
		s.rngs[b] = LaneRand(s.seed, b)
	}
}

// extraFor is lane b's custom processors: the shared ones, then the lane's.
func (s *Sampler) extraFor(b int) []Processor {
	extra := append([]Processor(nil), s.extra...)
	if s.laneExtra != nil {
		extra = append(extra, s.laneExtra(b)...)
	}
	return extra
}

// Choose implements engine.Chooser: logits are [B, V] float32.
func (s *Sampler) Choose(logits *mlx.Array, step int, history [][]int) ([]int, error) {
	sh := logits.Shape()
	if len(sh) != 2 || sh[0] != s.lanes {
		return nil, fmt.Errorf("sampler: logits %v for %d lanes", sh, s.lanes)
	}
	flat, err := logits.Float32s()
	if err != nil {
		return nil, err
	}
	V := sh[1]
	if s.chains == nil || step == 0 {
		s.build(len(history[0]) - step)
	}
	var shared float64
	if s.sharedDraws {
		shared = s.rngs[0].Float64()
	}
	out := make([]int, s.lanes)
	for b := 0; b < s.lanes; b++ {
		scores := flat[b*V : (b+1)*V]
		lane := &Lane{IDs: history[b], PromptLen: s.promptLen}
		u := shared
		if !s.sharedDraws {
			u = s.rngs[b].Float64()
		}
		id, err := s.pick(b, lane, scores, u)
		if err != nil {
			return nil, fmt.Errorf("lane %d, step %d: %w", b, step, err)
		}
		if s.Observe != nil {
			s.Observe(b, step, scores)
		}
		out[b] = id
	}
	return out, nil
}

// pick runs lane b's chain on scores (in place) and chooses a token: the
// argmax when greedy, else the token where the cumulative probability (in
// id order) first exceeds u.
func (s *Sampler) pick(b int, l *Lane, scores []float32, u float64) (int, error) {
	for _, v := range scores {
		if v != v {
			return 0, ErrInvalidLogits
		}
	}
	s.chains[b].Process(l, scores)
	if !s.cfg.Sampling() {
		best := -1
		for i, v := range scores {
			if v != v {
				return 0, ErrInvalidLogits
			}
			if best < 0 || v > scores[best] {
				best = i
			}
		}
		if best < 0 || math.IsInf(float64(scores[best]), -1) {
			return 0, ErrInvalidLogits
		}
		return best, nil
	}
	return Draw(scores, u)
}

// Draw picks the token whose cumulative softmax probability (in id order)
// first exceeds u in [0, 1).
func Draw(scores []float32, u float64) (int, error) {
	mf := negInf
	for _, v := range scores {
		if v != v {
			return 0, ErrInvalidLogits
		}
		if v > mf {
			mf = v
		}
	}
	m := float64(mf)
	if math.IsInf(m, 0) {
		return 0, ErrInvalidLogits
	}
	var z float64
	for _, v := range scores {
		if v != negInf {
			z += math.Exp(float64(v) - m)
		}
	}
	target := u * z
	var cum float64
	last := -1
	for i, v := range scores {
		if v == negInf {
			continue
		}
		cum += math.Exp(float64(v) - m)
		last = i
		if cum > target {
			return i, nil
		}
	}
	return last, nil // rounding left u*z just above the sum
}

package sampling

import (
	"context"
	"fmt"
	"math"
	"sort"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
)

// Beam is one finished beam-search hypothesis.
type Beam struct {
	// Tokens are the generated tokens (prompt excluded).
	Tokens []int
	// Score is sum(log-probs) / len(Tokens)^length_penalty.
	Score float64
}

type hyp struct {
	ids    []int // generated tokens
	score  float64
	source int
}

// BeamSearch decodes prompt with cfg's num_beams beams on the engine's
// batched lanes, the way transformers' beam search does: log-softmax, then
// the processor chain, top 2x beams (or more with several EOS ids)
// continuations over all beams, finished hypotheses scored by length
// penalty, early_stopping true/false/"never". It returns the best
// num_return_sequences hypotheses, best first. Runs on the MLX thread.
func BeamSearch(ctx context.Context, m *engine.Model, prompt []int, cfg *GenerationConfig, eos []int, hook engine.Hook) ([]Beam, error) {
	var out []Beam
	err := mlx.Do(func() error {
		var err error
		out, err = beamSearch(ctx, m, prompt, cfg, eos, hook)
		return err
	})
	return out, err
}

func beamSearch(ctx context.Context, m *engine.Model, prompt []int, cfg *GenerationConfig, eos []int, hook engine.Hook) ([]Beam, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(eos) == 0 {
		eos = cfg.EOSTokenID
	}
	nb := cfg.Beams()
	lp := or(cfg.LengthPenalty, 1.0)
	early := EarlyStopping{}
	if cfg.EarlyStopping != nil {
		early = *cfg.EarlyStopping
	}
	P := len(prompt)
	maxLen := cfg.MaxLen(P)
	if maxLen <= P {
		return nil, fmt.Errorf("beam search: no room for new tokens (max length %d, prompt %d)", maxLen, P)
	}
	keepN := max(2, 1+len(eos)) * nb
	chain := BuildChain(cfg, eos, P)
	V := m.Config.VocabSize

	cache := m.NewCache(nb)
	defer cache.Free()
	running := make([]hyp, nb)
	for b := range running {
		running[b] = hyp{score: -1e9}
	}
	running[0].score = 0
	finished := make([]hyp, nb)
	done := make([]bool, nb)
	for i := range finished {
		finished[i].score = -1e9
	}

	// Prefill every beam with the prompt.
	ids := make([]int32, 0, nb*P)
	for b := 0; b < nb; b++ {
		for _, t := range prompt {
			ids = append(ids, int32(t))
		}
	}
	input, err := mlx.FromInt32s(ids, nb, P)
	if err != nil {
		return nil, err
	}
	res, err := m.Forward(input, cache, engine.ForwardOptions{Hook: hook, LastOnly: true, Step: engine.Step{Prefill: true, PromptLen: P}})
	input.Free()
	if err != nil {
		return nil, err
	}
	for t := 0; ; t++ {
		if err := ctx.Err(); err != nil {
			res.Free()
			return nil, err
		}
		flat, err := res.Logits.Float32s()
		res.Free()
		if err != nil {
			return nil, err
		}
		type cand struct {
			beam, tok int
			logp      float64
		}
		var cands []cand
		for b := 0; b < nb; b++ {
			scores := flat[b*V : (b+1)*V]
			logSoftmax(scores)
			lane := &Lane{IDs: append(append([]int(nil), prompt...), running[b].ids...), PromptLen: P}
			chain.Process(lane, scores)
			for tok, s := range scores {
				cands = append(cands, cand{b, tok, float64(s) + running[b].score})
			}
		}
		sort.SliceStable(cands, func(i, j int) bool { return cands[i].logp > cands[j].logp })
		cands = cands[:keepN]
		curLen := P + t // tokens before this step's
		hits := make([]bool, len(cands))
		allHit := true
		for k, c := range cands {
			hits[k] = contains(eos, c.tok) || curLen+1 >= maxLen
			allHit = allHit && hits[k]
		}
		// Finished hypotheses: among the top nb candidates only.
		full := early.Value && !early.Never && allTrue(done)
		for k := 0; k < nb; k++ {
			if !hits[k] || full {
				continue
			}
			c := cands[k]
			norm := c.logp / math.Pow(float64(t+1), lp)
			h := hyp{ids: append(append([]int(nil), running[c.beam].ids...), c.tok), score: norm}
			finished, done = mergeFinished(finished, done, h)
		}
		// Running beams for the next step.
		next := make([]hyp, 0, nb)
		order := make([]int, len(cands))
		adj := make([]float64, len(cands))
		for k, c := range cands {
			order[k] = k
			adj[k] = c.logp
			if hits[k] {
				adj[k] -= 1e9
			}
		}
		sort.SliceStable(order, func(i, j int) bool { return adj[order[i]] > adj[order[j]] })
		for _, k := range order[:nb] {
			c := cands[k]
			next = append(next, hyp{ids: append(append([]int(nil), running[c.beam].ids...), c.tok), score: adj[k], source: c.beam})
		}
		running = next
		gen := t + 1
		// Stop when no running beam can beat the worst finished one, when all
		// slots are done under early stopping, or when nothing can continue.
		denom := float64(gen)
		if early.Never && lp > 0 {
			denom = float64(maxLen - P)
		}
		best := running[0].score / math.Pow(denom, lp)
		worst := -1e9
		if allTrue(done) {
			worst = math.Inf(1)
			for _, f := range finished {
				worst = math.Min(worst, f.score)
			}
		}
		improvable := best > worst
		open := !(allTrue(done) && early.Value && !early.Never)
		if !improvable || !open || allHit || P+gen >= maxLen {
			break
		}
		src := make([]int, nb)
		tok := make([]int32, nb)
		for b, h := range running {
			src[b] = h.source
			tok[b] = int32(h.ids[len(h.ids)-1])
		}
		if err := cache.Reorder(src); err != nil {
			return nil, err
		}
		x, err := mlx.FromInt32s(tok, nb, 1)
		if err != nil {
			return nil, err
		}
		res, err = m.Forward(x, cache, engine.ForwardOptions{Hook: hook, Step: engine.Step{Index: gen, PromptLen: P}})
		x.Free()
		if err != nil {
			return nil, err
		}
		if err := m.Eval(res, cache); err != nil {
			res.Free()
			return nil, err
		}
	}
	n := or(cfg.NumReturnSequences, 1)
	out := make([]Beam, 0, n)
	for _, f := range finished[:n] {
		out = append(out, Beam{Tokens: f.ids, Score: f.score})
	}
	return out, nil
}

// mergeFinished inserts h into the nb best finished slots (sorted best first).
func mergeFinished(slots []hyp, done []bool, h hyp) ([]hyp, []bool) {
	type slot struct {
		h    hyp
		done bool
	}
	all := make([]slot, 0, len(slots)+1)
	for i := range slots {
		all = append(all, slot{slots[i], done[i]})
	}
	all = append(all, slot{h, true})
	sort.SliceStable(all, func(i, j int) bool { return all[i].h.score > all[j].h.score })
	for i := range slots {
		slots[i], done[i] = all[i].h, all[i].done
	}
	return slots, done
}

func allTrue(xs []bool) bool {
	for _, x := range xs {
		if !x {
			return false
		}
	}
	return true
}

// logSoftmax rewrites scores as log-probabilities.
func logSoftmax(scores []float32) { LogSoftmax{}.Process(nil, scores) }

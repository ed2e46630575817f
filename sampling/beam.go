package sampling

import (
	"errors"
	"fmt"
	"math"
	"sort"

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

// cand is one continuation of a running beam.
type cand struct {
	beam, tok int
	logp      float64
}

// unset is the score of an empty slot or an unusable beam (transformers'
// -1e9).
const unset = -1e9

// BeamSearch chooses tokens the way transformers' beam search does, as a
// chooser for the engine's decode loop (engine.Chooser and
// engine.BeamChooser, structurally): the engine runs the prefill and every
// forward pass on num_beams lanes, and each step the search takes the
// log-softmax of every beam's logits, runs the processor chain, keeps the
// top 2x beams (or more with several EOS ids) continuations over all beams,
// scores finished hypotheses with the length penalty, tells the engine which
// lane each lane now continues (the KV cache is reordered to match) and when
// to stop (early_stopping true, false or "never"). Run it as
//
//	bs, err := sampling.NewBeamSearch(cfg, eos, len(prompt))
//	_, _, err = m.Generate(ctx, engine.Request{Prompt: prompt, Lanes: bs.Lanes(),
//		MaxNewTokens: cfg.MaxNew(len(prompt)), Chooser: bs, Hook: hook})
//	beams := bs.Beams()
//
// End ids are handled by the search, so the request needs no EOS. A
// BeamSearch may be reused for another generation with the same prompt
// length; it is not safe for concurrent use.
type BeamSearch struct {
	cfg       *GenerationConfig
	eos       []int
	nb        int // num_beams: the lanes
	promptLen int
	maxLen    int
	keepN     int // continuations kept per step
	numReturn int
	lp        float64 // length_penalty
	early     EarlyStopping
	chain     Chain

	prompt   []int
	running  []hyp
	finished []hyp  // the nb best finished hypotheses, best first
	done     []bool // which finished slots hold a hypothesis
	steps    int    // steps chosen so far
	over     bool   // the search ended by itself
	top      []cand // reused candidate buffer
}

// NewBeamSearch prepares a beam search with cfg's num_beams, length_penalty,
// early_stopping and num_return_sequences for a prompt of promptLen tokens.
// eos are the end ids (cfg's eos_token_id when empty).
func NewBeamSearch(cfg *GenerationConfig, eos []int, promptLen int) (*BeamSearch, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("beam search: generation config: %w", err)
	}
	if promptLen <= 0 {
		return nil, fmt.Errorf("beam search: empty prompt")
	}
	if len(eos) == 0 {
		eos = cfg.EOSTokenID
	}
	bs := &BeamSearch{cfg: cfg, eos: eos, nb: cfg.Beams(), promptLen: promptLen, maxLen: cfg.MaxLen(promptLen),
		lp: or(cfg.LengthPenalty, 1.0), numReturn: or(cfg.NumReturnSequences, 1)}
	if bs.maxLen <= promptLen {
		return nil, fmt.Errorf("beam search: no room for new tokens (max length %d, prompt %d)", bs.maxLen, promptLen)
	}
	if cfg.EarlyStopping != nil {
		bs.early = *cfg.EarlyStopping
	}
	bs.keepN = max(2, 1+len(eos)) * bs.nb
	bs.chain = BuildChain(cfg, eos, promptLen)
	return bs, nil
}

// Lanes is the number of lanes the search runs on (num_beams).
func (bs *BeamSearch) Lanes() int { return bs.nb }

// errNeedsBeams is returned by Choose: beam lanes must be reordered.
var errNeedsBeams = errors.New("beam search: the decode loop must call ChooseBeams (its lanes are reordered every step)")

// Choose implements engine.Chooser so a BeamSearch can be a request's
// chooser; the engine calls ChooseBeams instead, and Choose itself refuses,
// since a loop that does not reorder its lanes would decode wrong beams.
func (bs *BeamSearch) Choose(*mlx.Array, int, [][]int) ([]int, error) { return nil, errNeedsBeams }

// ChooseBeams implements engine.BeamChooser: from logits [num_beams, V]
// (float32) it picks every lane's next token and the beam that lane
// continues, and reports done when no running beam can improve the
// finished ones, when every slot is finished under early stopping, or when
// the length limit is reached. Step 0 starts a new search.
func (bs *BeamSearch) ChooseBeams(logits *mlx.Array, step int, history [][]int) (ids, src []int, done bool, err error) {
	sh := logits.Shape()
	if len(sh) != 2 || sh[0] != bs.nb {
		return nil, nil, false, fmt.Errorf("beam search: logits %v for %d beams", sh, bs.nb)
	}
	if step == 0 {
		if err := bs.start(history); err != nil {
			return nil, nil, false, err
		}
	}
	switch {
	case bs.over:
		return nil, nil, false, fmt.Errorf("beam search: step %d after the search ended", step)
	case step != bs.steps:
		return nil, nil, false, fmt.Errorf("beam search: step %d, expected step %d", step, bs.steps)
	}
	flat, err := logits.Float32s()
	if err != nil {
		return nil, nil, false, fmt.Errorf("beam search step %d: %w", step, err)
	}
	cands, err := bs.candidates(flat, sh[1])
	if err != nil {
		return nil, nil, false, fmt.Errorf("beam search step %d: %w", step, err)
	}
	done = bs.advance(step, cands)
	bs.steps++
	bs.over = done
	ids = make([]int, bs.nb)
	src = make([]int, bs.nb)
	for b, h := range bs.running {
		src[b] = h.source
		ids[b] = h.ids[len(h.ids)-1]
	}
	return ids, src, done, nil
}

// start resets the search for a generation whose lanes hold history (the
// prompt, identical in every lane).
func (bs *BeamSearch) start(history [][]int) error {
	if len(history) != bs.nb {
		return fmt.Errorf("beam search: %d histories for %d beams", len(history), bs.nb)
	}
	if len(history[0]) != bs.promptLen {
		return fmt.Errorf("beam search: prompt of %d tokens, the search was made for %d", len(history[0]), bs.promptLen)
	}
	bs.prompt = append(bs.prompt[:0], history[0]...)
	bs.running = make([]hyp, bs.nb)
	for b := range bs.running {
		bs.running[b] = hyp{score: unset}
	}
	bs.running[0].score = 0
	bs.finished = make([]hyp, bs.nb)
	bs.done = make([]bool, bs.nb)
	for i := range bs.finished {
		bs.finished[i].score = unset
	}
	bs.steps, bs.over = 0, false
	return nil
}

// candidates turns every beam's logits (flat [nb, V], rewritten in place)
// into log-probabilities, runs the processor chain and returns the keepN
// best continuations over all beams, best first; ties keep (beam, token)
// order, as a stable sort of all of them would.
func (bs *BeamSearch) candidates(flat []float32, V int) ([]cand, error) {
	keep := min(bs.keepN, bs.nb*V)
	top := bs.top[:0]
	for b := 0; b < bs.nb; b++ {
		scores := flat[b*V : (b+1)*V]
		logSoftmax(scores)
		lane := &Lane{IDs: append(append([]int(nil), bs.prompt...), bs.running[b].ids...), PromptLen: bs.promptLen}
		bs.chain.Process(lane, scores)
		base := bs.running[b].score
		for tok, s := range scores {
			lp := float64(s) + base
			if lp != lp {
				return nil, fmt.Errorf("beam %d: %w", b, ErrInvalidLogits)
			}
			if len(top) == keep && !(lp > top[keep-1].logp) {
				continue
			}
			// After every candidate at least as good: earlier ones win ties.
			i := sort.Search(len(top), func(i int) bool { return top[i].logp < lp })
			if len(top) < keep {
				top = append(top, cand{})
			}
			copy(top[i+1:], top[i:len(top)-1])
			top[i] = cand{b, tok, lp}
		}
	}
	bs.top = top
	if len(top) == 0 || math.IsInf(top[0].logp, -1) {
		return nil, ErrInvalidLogits
	}
	return top, nil
}

// advance records the finished hypotheses among cands (the keepN best
// continuations of step t), makes the next running beams and reports
// whether the search is over.
func (bs *BeamSearch) advance(t int, cands []cand) bool {
	nb, P := bs.nb, bs.promptLen
	curLen := P + t // tokens before this step's
	hits := make([]bool, len(cands))
	allHit := true
	for k, c := range cands {
		hits[k] = contains(bs.eos, c.tok) || curLen+1 >= bs.maxLen
		allHit = allHit && hits[k]
	}
	// Finished hypotheses: among the top nb candidates only.
	full := bs.early.Value && !bs.early.Never && allTrue(bs.done)
	for k := 0; k < nb && k < len(cands); k++ {
		if !hits[k] || full {
			continue
		}
		c := cands[k]
		norm := c.logp / math.Pow(float64(t+1), bs.lp)
		h := hyp{ids: append(append([]int(nil), bs.running[c.beam].ids...), c.tok), score: norm}
		bs.finished, bs.done = mergeFinished(bs.finished, bs.done, h)
	}
	// Running beams for the next step.
	order := make([]int, len(cands))
	adj := make([]float64, len(cands))
	for k, c := range cands {
		order[k] = k
		adj[k] = c.logp
		if hits[k] {
			adj[k] += unset
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return adj[order[i]] > adj[order[j]] })
	next := make([]hyp, 0, nb)
	for _, k := range order[:nb] { // len(cands) >= 2*nb
		c := cands[k]
		next = append(next, hyp{ids: append(append([]int(nil), bs.running[c.beam].ids...), c.tok), score: adj[k], source: c.beam})
	}
	bs.running = next
	gen := t + 1
	// Stop when no running beam can beat the worst finished one, when all
	// slots are done under early stopping, or when nothing can continue.
	denom := float64(gen)
	if bs.early.Never && bs.lp > 0 {
		denom = float64(bs.maxLen - P)
	}
	best := bs.running[0].score / math.Pow(denom, bs.lp)
	worst := unset
	if allTrue(bs.done) {
		worst = math.Inf(1)
		for _, f := range bs.finished {
			worst = math.Min(worst, f.score)
		}
	}
	improvable := best > worst
	open := !(allTrue(bs.done) && bs.early.Value && !bs.early.Never)
	return !improvable || !open || allHit || P+gen >= bs.maxLen
}

// Done reports whether the search ended by itself (rather than being cut
// short by the token budget, the deadline or cancellation).
func (bs *BeamSearch) Done() bool { return bs.over }

// Steps is the number of tokens chosen so far in the current search.
func (bs *BeamSearch) Steps() int { return bs.steps }

// Beams returns the best num_return_sequences finished hypotheses, best
// first. If the search was cut short, the running beams count as finished
// with the length they reached, as transformers' finalisation does; before
// any step there is none.
func (bs *BeamSearch) Beams() []Beam {
	finished := append([]hyp(nil), bs.finished...)
	done := append([]bool(nil), bs.done...)
	if !bs.over && bs.steps > 0 {
		for _, h := range bs.running {
			if h.score <= unset/2 { // a finished continuation, already counted
				continue
			}
			norm := h.score / math.Pow(float64(bs.steps), bs.lp)
			finished, done = mergeFinished(finished, done, hyp{ids: h.ids, score: norm})
		}
	}
	out := make([]Beam, 0, bs.numReturn)
	for i, f := range finished {
		if len(out) == bs.numReturn {
			break
		}
		if done[i] {
			out = append(out, Beam{Tokens: append([]int(nil), f.ids...), Score: f.score})
		}
	}
	return out
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

package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/mlx-genkit/genkit/mlx"
)

// Chooser picks the next token of every lane from float32 logits [B, V]. The
// sampling package provides Hugging Face's processors and samplers; Greedy
// is the argmax.
type Chooser interface {
	Choose(logits *mlx.Array, step int, history [][]int) ([]int, error)
}

// Greedy chooses the most likely token of every lane.
type Greedy struct{}

// Choose implements Chooser.
func (Greedy) Choose(logits *mlx.Array, _ int, _ [][]int) ([]int, error) {
	am, err := mlx.Argmax(logits, -1, false)
	if err != nil {
		return nil, err
	}
	defer am.Free()
	ids, err := am.Int32s()
	if err != nil {
		return nil, err
	}
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out, nil
}

// DeviceChooser is a Chooser that can also choose on the MLX device, so the
// decode loop queues step n+1 before it reads step n's tokens on the host
// (the logits never leave the device).
type DeviceChooser interface {
	Chooser
	// StartDevice prepares a generation whose lanes start from history; false
	// means this configuration needs the host path (Choose).
	StartDevice(history [][]int, vocab int) (bool, error)
	// ChooseDevice returns the lanes' next ids [B] int32, lazily; -1 marks a
	// lane whose logits are NaN or fully removed.
	ChooseDevice(logits *mlx.Array, step int) (*mlx.Array, error)
	// EndDevice releases what StartDevice made.
	EndDevice()
}

// StartDevice implements DeviceChooser: the argmax needs no state.
func (Greedy) StartDevice([][]int, int) (bool, error) { return true, nil }

// ChooseDevice implements DeviceChooser.
func (Greedy) ChooseDevice(logits *mlx.Array, _ int) (*mlx.Array, error) {
	s := mlx.NewScope()
	defer s.Close()
	x := logits
	if x.Dtype() != mlx.Float32 {
		x = s.Track(mlx.AsType(x, mlx.Float32))
	}
	out := mlx.MarkInvalid(s, x, s.Track(mlx.Argmax(x, -1, false)))
	if err := s.Err(); err != nil {
		return nil, err
	}
	s.Keep(out)
	return out, nil
}

// EndDevice implements DeviceChooser.
func (Greedy) EndDevice() {}

// BeamChooser is a Chooser whose lanes are hypotheses that trade places from
// step to step, as beam search's are: the chooser decides which lane each
// lane continues and when the whole generation ends, and the engine keeps
// owning the prefill, the forward passes and the KV cache.
//
// Generate calls ChooseBeams instead of Choose when the request's chooser
// implements it, and only on the host path (a BeamChooser never takes the
// device path, even if it also implements DeviceChooser). For such a request
// no lane ends on its own: Request.EOS, IgnoreEOS and Stop are ignored (the
// chooser handles end ids itself), and the generation ends when the chooser
// reports done, the token budget is spent, the deadline passes or ctx is
// cancelled. Hooks see every forward pass as for any other chooser; a lane's
// hook must therefore not depend on the lane keeping its identity.
type BeamChooser interface {
	Chooser
	// ChooseBeams picks step's tokens from logits [B, V] (float32), given
	// the lanes' histories (prompt then generated tokens; read only). After
	// it returns, lane b continues lane src[b]: the engine makes lane b's
	// history, result tokens and KV cache copies of lane src[b]'s, appends
	// ids[b] and feeds it to the next forward pass. Both slices have one
	// entry per lane. done ends the generation after this step's tokens
	// (no further forward pass runs).
	ChooseBeams(logits *mlx.Array, step int, history [][]int) (ids, src []int, done bool, err error)
}

// ErrInvalidLogits is returned when a lane's logits are NaN or every token
// was removed (steering far too strong, typically). It is mlx.ErrInvalidLogits,
// the one sentinel the engine and the sampling package share.
var ErrInvalidLogits = mlx.ErrInvalidLogits

// Request describes one generation: a prompt decoded in Lanes lanes at once
// (all lanes share the prompt; hooks tell them apart).
type Request struct {
	Prompt       []int
	Lanes        int
	MaxNewTokens int
	// Chooser picks the tokens (Greedy when nil); a BeamChooser also
	// reorders the lanes and decides when the generation ends.
	Chooser Chooser
	Hook    Hook
	// EOS ids end a lane (unless IgnoreEOS). Ignored for a BeamChooser.
	EOS       []int
	IgnoreEOS bool
	// PrefillChunk caps the tokens per forward pass of the prompt (0: 512).
	PrefillChunk int
	// OnToken, when set, is called for each new token of each lane that is
	// still running, on the MLX thread. With a BeamChooser it is called after
	// the step's reordering, so a lane's earlier tokens may have changed:
	// read LaneResult.Tokens for the lanes' sequences.
	OnToken func(lane, id int)
	// OnStep, when set, sees each step's logits [B, V] (before choosing).
	OnStep func(step int, logits *mlx.Array) error
	// Stop, when set, ends a lane after a token (stop strings); it sees the
	// lane's generated tokens. Ignored for a BeamChooser.
	Stop func(lane int, generated []int) bool
	// Deadline, when not zero, ends every lane once passed (max_time).
	Deadline time.Time
	// Sync forces the synchronous loop (logits read on the host every
	// step) even when the chooser can run on the device.
	Sync bool
}

// LaneResult is the outcome of one lane.
type LaneResult struct {
	Tokens []int
	// Finished is "eos", "stop", "length", "time", "cancelled", or "done"
	// when a BeamChooser ended the generation.
	Finished string
}

// Stats are timings of a generation.
type Stats struct {
	PromptTokens int
	Prefill      time.Duration
	Decode       time.Duration
	Steps        int
	// Build, Queue and Wait split Decode in the pipelined loop (zero in
	// the synchronous one): Build is the host's time building the next
	// step's graph, Queue its time in async_eval (MLX's scheduling; on a GPU
	// the kernel launches; and any wait for the device to take more work),
	// Wait its time waiting for a step's tokens. A Build near Decode means
	// graph building sets the pace.
	Build time.Duration
	Queue time.Duration
	Wait  time.Duration
}

// Generate runs req on the MLX thread until every lane stops (or a
// BeamChooser reports done), the token budget is spent, the deadline passes
// or ctx is cancelled (checked before every token). Under tensor
// parallelism every rank runs the same request and rank 0 alone decides
// when ctx or the deadline stops it (Stopped), for all ranks at the same
// step.
func (m *Model) Generate(ctx context.Context, req Request) ([]LaneResult, Stats, error) {
	var results []LaneResult
	var stats Stats
	err := mlx.Do(m.WorkContext(ctx), func() error {
		var err error
		results, stats, err = m.generate(ctx, req)
		return err
	})
	return results, stats, err
}

func (m *Model) generate(ctx context.Context, req Request) ([]LaneResult, Stats, error) {
	B := req.Lanes
	if B <= 0 {
		B = 1
	}
	if len(req.Prompt) == 0 {
		return nil, Stats{}, fmt.Errorf("generate: empty prompt")
	}
	for _, id := range req.Prompt {
		if id < 0 || id >= m.Config.VocabSize {
			return nil, Stats{}, fmt.Errorf("generate: token id %d outside the vocabulary [0, %d)", id, m.Config.VocabSize)
		}
	}
	chooser := req.Chooser
	if chooser == nil {
		chooser = Greedy{}
	}
	chunk := req.PrefillChunk
	if chunk <= 0 {
		chunk = 512
	}
	stats := Stats{PromptTokens: len(req.Prompt)}
	cache := m.NewCache(B)
	defer cache.Free()
	history := make([][]int, B)
	for b := range history {
		history[b] = append([]int(nil), req.Prompt...)
	}
	results := make([]LaneResult, B)
	isEOS := map[int]bool{}
	for _, e := range req.EOS {
		isEOS[e] = true
	}

	// Prefill in chunks.
	t0 := time.Now()
	var logits *mlx.Array
	for start := 0; start < len(req.Prompt); start += chunk {
		if code, err := m.halt(ctx, time.Time{}); err != nil {
			return nil, stats, err
		} else if code != haltNone {
			return cancelled(results), stats, nil
		}
		end := min(start+chunk, len(req.Prompt))
		ids := make([]int32, 0, B*(end-start))
		for b := 0; b < B; b++ {
			for _, id := range req.Prompt[start:end] {
				ids = append(ids, int32(id))
			}
		}
		next, _, err := m.step(ids, B, cache, ForwardOptions{Hook: req.Hook, LastOnly: true, Step: Step{Prefill: true, PromptLen: len(req.Prompt)}})
		if err != nil {
			return nil, stats, err
		}
		logits.Free()
		logits = next
	}
	stats.Prefill = time.Since(t0)
	t1 := time.Now()
	defer func() { logits.Free() }()
	bc, beams := chooser.(BeamChooser)
	if dc, ok := chooser.(DeviceChooser); ok && !beams && !req.Sync && req.OnStep == nil {
		use, err := dc.StartDevice(history, m.Config.VocabSize)
		if err != nil {
			return nil, stats, err
		}
		if use {
			defer dc.EndDevice()
			err := m.decodeDevice(ctx, req, dc, B, cache, logits, history, results, isEOS, &stats)
			stats.Decode = time.Since(t1)
			finishLength(results)
			return results, stats, err
		}
	}
	running := B
	// carried is the stop decision the step's forward pass carried (tensor
	// parallelism, from step 1: no collective of its own).
	var carried *mlx.Array
	defer func() { carried.Free() }()
	for step := 0; step < req.MaxNewTokens && running > 0; step++ {
		var code int32
		var err error
		if carried != nil {
			code, err = readHalt(carried)
			carried.Free()
			carried = nil
		} else {
			code, err = m.halt(ctx, req.Deadline)
		}
		if err != nil {
			return nil, stats, err
		}
		if code == haltCancelled {
			markCancelled(results)
			break
		}
		if code == haltTime {
			markAs(results, "time")
			break
		}
		last, err := mlx.Reshape(logits, B, m.Config.VocabSize)
		if err != nil {
			return nil, stats, err
		}
		if req.OnStep != nil {
			if err := req.OnStep(step, last); err != nil {
				last.Free()
				return nil, stats, err
			}
		}
		var next, src []int
		done := false
		if beams {
			next, src, done, err = bc.ChooseBeams(last, step, history)
		} else {
			next, err = chooser.Choose(last, step, history)
		}
		last.Free()
		if err == nil {
			err = checkChoice(next, src, beams, B, m.Config.VocabSize)
		}
		if err != nil {
			return nil, stats, fmt.Errorf("generate step %d: %w", step, err)
		}
		if beams {
			reorderLanes(results, history, src)
			acceptBeamTokens(req, results, history, next)
		} else {
			running -= acceptTokens(req, results, history, isEOS, next)
		}
		stats.Steps = step + 1
		if done {
			markAs(results, "done")
			break
		}
		if running == 0 || step+1 == req.MaxNewTokens {
			break
		}
		if beams && !identity(src) {
			if err := cache.Reorder(src); err != nil {
				return nil, stats, fmt.Errorf("generate step %d: %w", step, err)
			}
		}
		ids := make([]int32, B)
		for b := range ids {
			ids[b] = int32(next[b])
		}
		opts := ForwardOptions{Hook: req.Hook, Step: Step{Index: step + 1, PromptLen: len(req.Prompt)}}
		if m.tp != nil {
			if opts.flag, err = m.haltInput(ctx, req.Deadline); err != nil {
				return nil, stats, err
			}
		}
		nextLogits, flag, err := m.step(ids, B, cache, opts)
		opts.flag.Free()
		if err != nil {
			return nil, stats, err
		}
		logits.Free()
		logits, carried = nextLogits, flag
	}
	stats.Decode = time.Since(t1)
	finishLength(results)
	return results, stats, nil
}

// acceptTokens appends each running lane's new token, reports it, ends the
// lanes that reach an end id or a stop string, and returns how many ended.
// Both decode loops call it.
func acceptTokens(req Request, results []LaneResult, history [][]int, isEOS map[int]bool, next []int) int {
	ended := 0
	for b := range results {
		if results[b].Finished != "" {
			continue
		}
		id := next[b]
		results[b].Tokens = append(results[b].Tokens, id)
		history[b] = append(history[b], id)
		if req.OnToken != nil {
			req.OnToken(b, id)
		}
		switch {
		case !req.IgnoreEOS && isEOS[id]:
			results[b].Finished = "eos"
			ended++
		case req.Stop != nil && req.Stop(b, results[b].Tokens):
			results[b].Finished = "stop"
			ended++
		}
	}
	return ended
}

// checkChoice refuses a choice the loop cannot feed: one id per lane, each
// in the vocabulary, and for a BeamChooser one source lane per lane.
func checkChoice(ids, src []int, beams bool, B, V int) error {
	if len(ids) != B {
		return fmt.Errorf("chooser returned %d ids for %d lanes", len(ids), B)
	}
	for b, id := range ids {
		if id < 0 || id >= V {
			return fmt.Errorf("chooser returned token id %d for lane %d, outside the vocabulary [0, %d)", id, b, V)
		}
	}
	if !beams {
		return nil
	}
	if len(src) != B {
		return fmt.Errorf("beam chooser returned %d source lanes for %d lanes", len(src), B)
	}
	for b, x := range src {
		if x < 0 || x >= B {
			return fmt.Errorf("beam chooser returned source lane %d for lane %d, outside [0, %d)", x, b, B)
		}
	}
	return nil
}

// reorderLanes makes lane b's history and result tokens copies of lane
// src[b]'s (src is checked).
func reorderLanes(results []LaneResult, history [][]int, src []int) {
	if identity(src) {
		return
	}
	hist := make([][]int, len(src))
	toks := make([][]int, len(src))
	for b, x := range src {
		hist[b] = append([]int(nil), history[x]...)
		toks[b] = append([]int(nil), results[x].Tokens...)
	}
	copy(history, hist)
	for b := range results {
		results[b].Tokens = toks[b]
	}
}

// acceptBeamTokens appends each lane's new token and reports it; no lane
// ends on its own (the BeamChooser decides when the generation ends).
func acceptBeamTokens(req Request, results []LaneResult, history [][]int, next []int) {
	for b := range results {
		results[b].Tokens = append(results[b].Tokens, next[b])
		history[b] = append(history[b], next[b])
		if req.OnToken != nil {
			req.OnToken(b, next[b])
		}
	}
}

// identity reports whether src keeps every lane in place.
func identity(src []int) bool {
	for b, x := range src {
		if x != b {
			return false
		}
	}
	return true
}

func finishLength(results []LaneResult) {
	for b := range results {
		if results[b].Finished == "" {
			results[b].Finished = "length"
		}
	}
}

// decodeDevice is the pipelined decode loop: the tokens stay on the device,
// and step n+1's forward pass and choice are queued (async_eval) before step
// n's tokens are read, as mlx-lm does, so the device never waits for the
// host. The last queued step is wasted when every lane stops. Under tensor
// parallelism each step carries rank 0's stop decision (haltInput) in
// block 0's attention all-sum and it is read with the step's tokens, so
// the ranks queue and drain the same steps and the pipeline keeps
// running: a cancellation or the deadline takes effect one step later
// than on one device (and is first seen at step 1).
func (m *Model) decodeDevice(ctx context.Context, req Request, dc DeviceChooser, B int, cache *Cache,
	logits *mlx.Array, history [][]int, results []LaneResult, isEOS map[int]bool, stats *Stats) error {
	V := m.Config.VocabSize
	last, err := mlx.Reshape(logits, B, V)
	if err != nil {
		return err
	}
	y, err := dc.ChooseDevice(last, 0)
	last.Free()
	if err != nil {
		return fmt.Errorf("generate step 0: %w", err)
	}
	if err := mlx.AsyncEval(y); err != nil {
		y.Free()
		return fmt.Errorf("generate: %w", err)
	}
	// flag is the stop decision queued with y (tensor parallelism only;
	// none with step 0's).
	tp := m.tp != nil
	var flag *mlx.Array
	defer func() { y.Free(); flag.Free() }()
	running := B
	for step := 0; step < req.MaxNewTokens && running > 0; step++ {
		// Queue the next step first.
		var next, nextFlag *mlx.Array
		if step+1 < req.MaxNewTokens {
			var carry *mlx.Array
			if tp {
				if carry, err = m.haltInput(ctx, req.Deadline); err != nil {
					return err
				}
			}
			next, nextFlag, err = m.queueStep(req, dc, y, B, cache, step+1, carry, stats)
			carry.Free()
			if err != nil {
				return err
			}
		}
		tw := time.Now()
		ids, err := y.Int32s()
		stats.Wait += time.Since(tw)
		y.Free()
		y = next
		if err != nil {
			nextFlag.Free() // queued with next; the deferred Free sees flag only
			return fmt.Errorf("generate step %d: %w", step, err)
		}
		code := haltNone
		switch {
		case tp && flag != nil:
			code, err = readHalt(flag)
		case !tp && ctx.Err() != nil:
			code = haltCancelled
		}
		flag.Free()
		flag = nextFlag
		if err != nil {
			return fmt.Errorf("generate step %d: %w", step, err)
		}
		if code == haltCancelled {
			markCancelled(results)
			return nil
		}
		chosen := make([]int, B)
		for b := range chosen {
			chosen[b] = int(ids[b])
			if chosen[b] < 0 && results[b].Finished == "" {
				return fmt.Errorf("generate step %d, lane %d: %w", step, b, ErrInvalidLogits)
			}
		}
		running -= acceptTokens(req, results, history, isEOS, chosen)
		stats.Steps = step + 1
		if code == haltTime || !tp && !req.Deadline.IsZero() && time.Now().After(req.Deadline) {
			markAs(results, "time")
			break
		}
	}
	return nil
}

// queueStep builds the forward pass of tokens y ([B] int32, lazy) and the
// choice of the following tokens, and starts evaluating them with the
// cache; the time of each part is added to stats' Build and Queue. A stop
// decision flag (tensor parallelism) rides in block 0's attention all-sum;
// its sum is returned with the tokens.
func (m *Model) queueStep(req Request, dc DeviceChooser, y *mlx.Array, B int, cache *Cache, index int, flag *mlx.Array,
	stats *Stats) (*mlx.Array, *mlx.Array, error) {
	t0 := time.Now()
	tok, err := mlx.Reshape(y, B, 1)
	if err != nil {
		return nil, nil, err
	}
	res, err := m.Forward(tok, cache, ForwardOptions{Hook: req.Hook, Step: Step{Index: index, PromptLen: len(req.Prompt)}, flag: flag})
	tok.Free()
	if err != nil {
		return nil, nil, err
	}
	summed := res.flag
	for _, h := range res.Hidden {
		h.Free()
	}
	l, err := mlx.Reshape(res.Logits, B, m.Config.VocabSize)
	res.Logits.Free()
	if err != nil {
		summed.Free()
		return nil, nil, err
	}
	next, err := dc.ChooseDevice(l, index)
	l.Free()
	if err != nil {
		summed.Free()
		return nil, nil, fmt.Errorf("generate step %d: %w", index, err)
	}
	out := append([]*mlx.Array{next}, cache.arrays()...)
	if summed != nil {
		out = append(out, summed)
	}
	t1 := time.Now()
	stats.Build += t1.Sub(t0)
	err = mlx.AsyncEval(out...)
	stats.Queue += time.Since(t1)
	if err != nil {
		next.Free()
		summed.Free()
		return nil, nil, fmt.Errorf("generate: %w", err)
	}
	return next, summed, nil
}

func cancelled(r []LaneResult) []LaneResult {
	markCancelled(r)
	return r
}

func markCancelled(r []LaneResult) { markAs(r, "cancelled") }

func markAs(r []LaneResult, why string) {
	for b := range r {
		if r[b].Finished == "" {
			r[b].Finished = why
		}
	}
}

// step runs ids ([B, len(ids)/B]) through the model, evaluates the logits
// with the cache and returns them, with the sum of the stop decision the
// pass carried (opts.flag; nil without one).
func (m *Model) step(ids []int32, B int, cache *Cache, opts ForwardOptions) (*mlx.Array, *mlx.Array, error) {
	tok, err := mlx.FromInt32s(ids, B, len(ids)/B)
	if err != nil {
		return nil, nil, err
	}
	res, err := m.Forward(tok, cache, opts)
	tok.Free()
	if err != nil {
		return nil, nil, err
	}
	if err := m.Eval(res, cache); err != nil {
		res.Free()
		return nil, nil, fmt.Errorf("generate: %w", err)
	}
	for _, h := range res.Hidden {
		h.Free()
	}
	return res.Logits, res.flag, nil
}

package sampling

import (
	"fmt"
	"math"

	"github.com/mlx-genkit/genkit/mlx"
)

// The device path: the processors that need no host logic run in float32 on
// the MLX device, so a decode loop can queue step n+1 before it reads step n's
// token. The host chain (BuildChain) stays the reference and the path for
// every other processor.

// deviceNames are the processors DeviceChain implements.
var deviceNames = map[string]bool{
	"repetition_penalty": true, "frequency_presence_penalty": true, "logit_bias": true,
	"temperature": true, "top_k": true, "top_p": true, "min_p": true,
}

// DeviceChain is a processor chain that runs on the MLX device: repetition,
// frequency and presence penalties, per-lane logit biases, temperature,
// top-k, top-p and min-p, in Hugging Face's order, on float32 scores [B, V].
type DeviceChain struct {
	rep        float32
	freq, pres float32
	temp       float32
	topK       int
	topP       float64
	minP       float64
	sample     bool
	biased     bool
}

// NewDeviceChain returns the device chain equivalent to BuildChain(cfg, eos,
// promptLen, extra(b)...) for every lane b, or nil and the name of the first
// processor that only the host chain has.
func NewDeviceChain(cfg *GenerationConfig, eos []int, promptLen, lanes int, extra func(lane int) []Processor) (*DeviceChain, string) {
	d := &DeviceChain{rep: 1, temp: 1, topP: 1, sample: cfg.Sampling()}
	for b := 0; b < lanes; b++ {
		var ps []Processor
		if extra != nil {
			ps = extra(b)
		}
		for _, p := range BuildChain(cfg, eos, promptLen, ps...) {
			if !deviceNames[p.Name()] {
				return nil, p.Name()
			}
			switch p := p.(type) {
			case *RepetitionPenalty:
				d.rep = p.Penalty
			case *FrequencyPresence:
				d.freq, d.pres = p.Frequency, p.Presence
			case *Bias:
				d.biased = true
			case *Temperature:
				d.temp = p.T
			case *TopK:
				d.topK = max(p.K, p.MinKeep)
			case *TopP:
				d.topP = p.P
			case *MinP:
				d.minP = p.MinP
			}
		}
	}
	return d, ""
}

// State is a device chain's per-generation state: which tokens each lane has
// seen (prompt included, for the repetition penalty), how often each lane
// generated each token (frequency and presence), and the lanes' biases.
type State struct {
	Seen   *mlx.Array // [B, V] float32 0/1, nil when unused
	Counts *mlx.Array // [B, V] float32, nil when unused
	Bias   *mlx.Array // [B, V] float32, nil when unused
}

// Free releases the state's arrays.
func (st *State) Free() {
	if st == nil {
		return
	}
	mlx.Free(st.Seen, st.Counts, st.Bias)
	st.Seen, st.Counts, st.Bias = nil, nil, nil
}

// NewState builds the state for lanes that all start from prompt (on the
// MLX thread). bias(b) gives lane b's logit bias values (nil for none).
func (d *DeviceChain) NewState(histories [][]int, vocab int, bias func(lane int) []float32) (*State, error) {
	B := len(histories)
	st := &State{}
	var err error
	if d.rep != 1 {
		seen := make([]float32, B*vocab)
		for b, h := range histories {
			for _, id := range h {
				if id >= 0 && id < vocab {
					seen[b*vocab+id] = 1
				}
			}
		}
		if st.Seen, err = mlx.FromFloat32s(seen, B, vocab); err != nil {
			return nil, err
		}
	}
	if d.freq != 0 || d.pres != 0 {
		if st.Counts, err = mlx.Zeros(mlx.Float32, B, vocab); err != nil {
			st.Free()
			return nil, err
		}
	}
	if d.biased && bias != nil {
		vals := make([]float32, B*vocab)
		for b := 0; b < B; b++ {
			copy(vals[b*vocab:(b+1)*vocab], bias(b))
		}
		if st.Bias, err = mlx.FromFloat32s(vals, B, vocab); err != nil {
			st.Free()
			return nil, err
		}
	}
	return st, nil
}

// Process returns the processed scores [B, V] float32 of logits [B, V]; the
// arrays it makes belong to s, the result included.
func (d *DeviceChain) Process(s *mlx.Scope, logits *mlx.Array, st *State) *mlx.Array {
	f32 := func(v float64) *mlx.Array { return s.Track(mlx.Scalar(v, mlx.Float32)) }
	x := logits
	if x.Dtype() != mlx.Float32 {
		x = s.Track(mlx.AsType(x, mlx.Float32))
	}
	if d.rep != 1 && st != nil && st.Seen != nil {
		p := float64(d.rep)
		neg := s.Track(mlx.Less(x, f32(0)))
		pen := s.Track(mlx.Where(neg, s.Track(mlx.Multiply(x, f32(p))), s.Track(mlx.Divide(x, f32(p)))))
		seen := s.Track(mlx.Greater(st.Seen, f32(0)))
		x = s.Track(mlx.Where(seen, pen, x))
	}
	if (d.freq != 0 || d.pres != 0) && st != nil && st.Counts != nil {
		some := s.Track(mlx.Greater(st.Counts, f32(0)))
		sub := s.Track(mlx.Add(s.Track(mlx.Multiply(st.Counts, f32(float64(d.freq)))), f32(float64(d.pres))))
		x = s.Track(mlx.Subtract(x, s.Track(mlx.Where(some, sub, f32(0)))))
	}
	if st != nil && st.Bias != nil {
		x = s.Track(mlx.Add(x, st.Bias))
	}
	if !d.sample {
		return x
	}
	negInf := f32(math.Inf(-1))
	if d.temp != 1 {
		x = s.Track(mlx.Divide(x, f32(float64(d.temp))))
	}
	V := x.Dim(-1)
	if d.topK > 0 && d.topK < V {
		// Keep every score at least as large as the K-th largest.
		kth := s.Track(mlx.Min(s.Track(mlx.TopK(x, d.topK, -1)), true, -1))
		x = s.Track(mlx.Where(s.Track(mlx.Less(x, kth)), negInf, x))
	}
	if d.topP < 1 {
		// Sorted descending, a token goes when the tokens ranked above it
		// already hold P; the smallest kept score is the threshold.
		desc := s.Track(mlx.Negative(s.Track(mlx.Sort(s.Track(mlx.Negative(x)), -1))))
		probs := s.Track(mlx.Softmax(desc, -1, true))
		above := s.Track(mlx.Cumsum(probs, -1, false, false))
		keep := s.Track(mlx.Less(above, f32(d.topP)))
		th := s.Track(mlx.Min(s.Track(mlx.Where(keep, desc, f32(math.Inf(1)))), true, -1))
		x = s.Track(mlx.Where(s.Track(mlx.Less(x, th)), negInf, x))
	}
	if d.minP > 0 {
		// Scores below log(min_p) + the top score have probability below
		// min_p times the top one (the top token always stays).
		top := s.Track(mlx.Max(x, true, -1))
		th := s.Track(mlx.Add(top, f32(math.Log(d.minP))))
		x = s.Track(mlx.Where(s.Track(mlx.Less(x, th)), negInf, x))
	}
	return x
}

// Pick chooses a token per lane from processed scores [B, V]: the argmax, or
// for sampling the first token whose cumulative probability (in id order)
// exceeds u[b] times the total, as Draw does on the host. Lanes whose scores
// are NaN or all -inf get -1. The result is int32 [B]; it belongs to s.
func (d *DeviceChain) Pick(s *mlx.Scope, x *mlx.Array, u []float32) *mlx.Array {
	B := x.Dim(0)
	var id *mlx.Array
	if !d.sample {
		id = s.Track(mlx.Argmax(x, -1, false))
	} else {
		probs := s.Track(mlx.Softmax(x, -1, true))
		cdf := s.Track(mlx.Cumsum(probs, -1, false, true))
		total := s.Track(mlx.Slice(cdf, []int{0, x.Dim(-1) - 1}, []int{B, x.Dim(-1)}, nil))
		uu := s.Track(mlx.FromFloat32s(u, B, 1))
		over := s.Track(mlx.Greater(cdf, s.Track(mlx.Multiply(total, uu))))
		id = s.Track(mlx.Argmax(over, -1, false))
	}
	return mlx.MarkInvalid(s, x, id)
}

// Update folds the chosen ids [B] int32 into the state (lazily): the seen
// mask and the generated counts.
func (d *DeviceChain) Update(st *State, ids *mlx.Array, vocab int) error {
	if st == nil || (st.Seen == nil && st.Counts == nil) {
		return nil
	}
	s := mlx.NewScope()
	defer s.Close()
	B := ids.Dim(0)
	col := s.Track(mlx.Reshape(ids, B, 1))
	ar := s.Track(mlx.Arange(0, float64(vocab), 1, mlx.Int32))
	hot := s.Track(mlx.AsType(s.Track(mlx.Equal(s.Track(mlx.Reshape(ar, 1, vocab)), col)), mlx.Float32))
	if err := s.Err(); err != nil {
		return err
	}
	if st.Seen != nil {
		n, err := mlx.Maximum(st.Seen, hot)
		if err != nil {
			return err
		}
		st.Seen.Free()
		st.Seen = n
	}
	if st.Counts != nil {
		n, err := mlx.Add(st.Counts, hot)
		if err != nil {
			return err
		}
		st.Counts.Free()
		st.Counts = n
	}
	return nil
}

// deviceRun is a Sampler's state for one generation on the device.
type deviceRun struct {
	chain *DeviceChain
	state *State
	vocab int
}

// StartDevice prepares the sampler to choose on the device for lanes that
// start from history (implements engine.DeviceChooser). It reports false
// when a processor needs the host, or when Observe wants host scores; the
// caller then uses Choose.
func (s *Sampler) StartDevice(history [][]int, vocab int) (bool, error) {
	s.EndDevice()
	if s.Observe != nil || len(history) != s.lanes {
		return false, nil
	}
	chain, _ := NewDeviceChain(s.cfg, s.eos, len(history[0]), s.lanes, s.extraFor)
	if chain == nil {
		return false, nil
	}
	s.resetDraws()
	bias := func(b int) []float32 {
		v := make([]float32, vocab)
		for _, p := range s.extraFor(b) {
			if pb, ok := p.(*Bias); ok {
				addInto(v, pb.Values)
			}
		}
		return v
	}
	st, err := chain.NewState(history, vocab, bias)
	if err != nil {
		return false, fmt.Errorf("sampler: %w", err)
	}
	s.dev = &deviceRun{chain: chain, state: st, vocab: vocab}
	return true, nil
}

// ChooseDevice queues the choice of every lane's next token from logits
// [B, V] and returns the ids [B] int32 (lazy; -1 marks a lane whose logits
// are NaN or fully removed). The random numbers are the host path's: lane
// b's PCG stream, or lane 0's for shared draws.
func (s *Sampler) ChooseDevice(logits *mlx.Array, step int) (*mlx.Array, error) {
	if s.dev == nil {
		return nil, fmt.Errorf("sampler: ChooseDevice before StartDevice")
	}
	var u []float32
	if s.cfg.Sampling() {
		u = make([]float32, s.lanes)
		var shared float64
		if s.sharedDraws {
			shared = s.rngs[0].Float64()
		}
		for b := range u {
			v := shared
			if !s.sharedDraws {
				v = s.rngs[b].Float64()
			}
			u[b] = float32(v)
		}
	}
	sc := mlx.NewScope()
	defer sc.Close()
	x := s.dev.chain.Process(sc, logits, s.dev.state)
	ids := s.dev.chain.Pick(sc, x, u)
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("sampler step %d: %w", step, err)
	}
	sc.Keep(ids)
	if err := s.dev.chain.Update(s.dev.state, ids, s.dev.vocab); err != nil {
		ids.Free()
		return nil, err
	}
	return ids, nil
}

// EndDevice releases the device state.
func (s *Sampler) EndDevice() {
	if s.dev != nil {
		s.dev.state.Free()
		s.dev = nil
	}
}

func addInto(dst, src []float32) {
	for i := range dst {
		if i < len(src) {
			dst[i] += src[i]
		}
	}
}

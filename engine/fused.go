package engine

import (
	"math"
	"os"

	"github.com/mlx-genkit/genkit/mlx"
)

// fusedBlocks says whether decode steps of this model may run each block as
// one mlx.DecodeBlock: on the CPU (where the row products apply), float32,
// and every block's projections usable by the fused kernel.
// GENKIT_FUSED_BLOCKS=0 turns it off (for comparison and bisecting).
func (m *Model) useFusedBlocks() error {
	if os.Getenv("GENKIT_FUSED_BLOCKS") == "0" || !m.fusable || !rowProducts(m.DType) || !mlx.RowProductAvailable() || m.DType != mlx.Float32 {
		return nil
	}
	quantized := true
	for _, b := range m.layers {
		if b.qkv == nil || b.gateUp == nil {
			return nil
		}
		for _, l := range []*Linear{b.qkv, b.o, b.gateUp, b.down} {
			bl, ok := l.blockLinear()
			if !ok {
				return nil
			}
			quantized = quantized && bl.Q != nil
		}
	}
	m.fusedQuantized = quantized
	a, err := invFrequencies(m.Config)
	if err != nil {
		return err
	}
	if err := mlx.Eval(a); err != nil {
		a.Free()
		return err
	}
	m.invFreq = a
	return nil
}

// invFrequencies is RoPE's inverse frequencies [head_dim / 2] (float32) as
// the fused decode blocks read them: 1 / ropePeriods.
func invFrequencies(cfg *Config) (*mlx.Array, error) {
	periods, err := ropePeriods(cfg)
	if err != nil {
		return nil, err
	}
	inv := make([]float32, len(periods))
	for i := range inv {
		inv[i] = float32(1 / float64(periods[i]))
	}
	return mlx.FromFloat32s(inv, len(inv))
}

// blockLinear is l as the fused decode block reads it.
func (l *Linear) blockLinear() (mlx.BlockLinear, bool) {
	bl := mlx.BlockLinear{Bias: l.bias, In: l.in, Out: l.out}
	if l.bias != nil && l.bias.Dtype() != mlx.Float32 {
		return bl, false
	}
	q := l.rq
	if q == nil {
		q = l.q
	}
	switch {
	case q != nil && (q.Bits == 4 || q.Bits == 8) && q.Scales.Dtype() == mlx.Float32 && q.Biases.Dtype() == mlx.Float32:
		bl.Q = q
	case l.q == nil && l.rows && l.wT != nil && l.wT.Dtype() == mlx.Float32:
		bl.Dense = l.wT
	default:
		return bl, false
	}
	return bl, true
}

// fusedMaxLanes is the most lanes a fused decode step takes with
// quantized weights: the row kernels read each weight block once for four
// rows, so an 8-lane sweep costs two passes over the weights where the
// op-by-op graph's GEMM on the dense copy costs more (measured here: 8.9
// steps/s op by op). Dense weights take at most rowProductMaxRows lanes:
// each lane is its own matrix-vector product there.
const fusedMaxLanes = 8

// fusedStep reports whether a forward pass of B lanes and L positions runs
// its blocks fused.
func (m *Model) fusedStep(B, L int, h *mlx.Array) bool {
	if m.gpu != nil {
		return L == 1 && h != nil && h.Dtype() == m.gpu.dtype && B <= m.kernels.rows
	}
	if m.invFreq == nil || L != 1 || h == nil || h.Dtype() != mlx.Float32 {
		return false
	}
	if m.fusedQuantized {
		return B <= fusedMaxLanes
	}
	return B <= rowProductMaxRows
}

// fusedBlock runs block i on h ([B, 1, D]) as one mlx.DecodeBlock, writing
// the new keys and values into the cache at its offset.
func (m *Model) fusedBlock(s *mlx.Scope, i int, h *mlx.Array, cache *Cache, pads []int) *mlx.Array {
	if s.Err() != nil {
		return nil
	}
	cfg := m.Config
	b := m.layers[i]
	B := h.Dim(0)
	if err := cache.reserve(i, B, cfg.NumKVHeads, cache.offset+1, cfg.HeadDim, mlx.Float32); err != nil {
		s.Fail(err)
		return nil
	}
	lin := func(l *Linear) mlx.BlockLinear { bl, _ := l.blockLinear(); return bl }
	return s.Track(mlx.DecodeBlock(&mlx.DecodeBlockArgs{
		H: h, AttnNorm: b.attnNorm, FFNNorm: b.ffnNorm, KCache: cache.keys[i], VCache: cache.values[i],
		InvFreq: m.invFreq, QNorm: b.qNorm, KNorm: b.kNorm,
		QKV: lin(b.qkv), O: lin(b.o), GateUp: lin(b.gateUp), Down: lin(b.down),
		Heads: cfg.NumHeads, KVHeads: cfg.NumKVHeads, HeadDim: cfg.HeadDim, Intermediate: b.gate.out,
		Offset: cache.offset, Pads: pads, Traditional: cfg.TraditionalRoPE,
		Eps: float32(cfg.RMSNormEps), Scale: float32(1 / math.Sqrt(float64(cfg.HeadDim))),
	}))
}

package engine

import (
	"fmt"
	"math"
	"os"

	"github.com/mlx-genkit/genkit/engine/tokenizer"
	"github.com/mlx-genkit/genkit/mlx"
)

// Model is a loaded decoder-only language model. Its methods must run on the
// MLX thread (inside mlx.Do).
type Model struct {
	Config *Config
	// Source is the file or directory the weights came from.
	Source string
	// Format is "gguf", "safetensors" or "mlx".
	Format string
	// DType is the compute dtype of activations.
	DType mlx.Dtype
	// Tokenizer is the model's tokenizer; nil for a directory without
	// tokenizer files (token ids still work).
	Tokenizer *tokenizer.Tokenizer

	embed  *Embedding
	layers []*block
	// kernels is which decode products genkit's CUDA kernels take, planned
	// by useGEMV on a CUDA GPU (kernelsPlanned).
	kernels        kernelPlan
	kernelsPlanned bool
	norm           *mlx.Array
	lmHead         *Linear
	ropeFreqs      *mlx.Array
	// invFreq is RoPE's inverse frequencies for the fused CPU decode block;
	// nil when decode steps run op by op (see useFusedBlocks).
	invFreq *mlx.Array
	// fusedQuantized: every fused block reads quantized weights (so more
	// lanes than two still pay off fused).
	fusedQuantized bool
	// gpu, when set, runs decode steps' blocks as genkit's fused CUDA
	// kernels (see useGPUBlocks).
	gpu *gpuBlocks
	// arch is the model's family; block runs one of its decoder blocks.
	arch  Arch
	block blockFunc
	// attn is each layer's attention: window and RoPE.
	attn []attnSpec
	// fusable: decode steps may run the fused CPU and GPU blocks.
	fusable bool
	// tp, when set, is this rank's part of a tensor-parallel group: its
	// heads and the group its blocks all-sum over.
	tp *tensorParallel
	// localFreqs are RoPE's periods of sliding layers when their base
	// differs (gemma3); nil otherwise.
	localFreqs *mlx.Array
}

// attnSpec is one layer's attention: its sliding window (0 for none) and
// RoPE base and periods.
type attnSpec struct {
	window int
	base   float32
	freqs  *mlx.Array
}

type block struct {
	attnNorm, ffnNorm *mlx.Array
	q, k, v, o        *Linear
	gate, up, down    *Linear
	// qkv and gateUp are q|k|v and gate|up fused into one matmul each
	// (fewer, larger ops per step); q, k, v, gate and up are then views of
	// their rows, kept for conversion and inspection.
	qkv, gateUp  *Linear
	qNorm, kNorm *mlx.Array
	// qNormFull: the q/k norms span all heads (olmo2), not one head.
	qNormFull bool
	// postAttnNorm and postFFNNorm normalise each sublayer's output
	// (gemma2/3, olmo2); nil when absent.
	postAttnNorm, postFFNNorm *mlx.Array
	// moe replaces gate/up/down in a sparse block (qwen3_moe).
	moe *moeMLP
}

// linears is the block's projections, nil for those its family lacks.
func (b *block) linears() []*Linear {
	return []*Linear{b.qkv, b.gateUp, b.q, b.k, b.v, b.o, b.gate, b.up, b.down}
}

// NumLayers is the number of decoder blocks.
func (m *Model) NumLayers() int { return len(m.layers) }

// HiddenSize is the width of the residual stream.
func (m *Model) HiddenSize() int { return m.Config.HiddenSize }

// VocabSize is the number of logits per position.
func (m *Model) VocabSize() int { return m.Config.VocabSize }

// Free releases every weight.
func (m *Model) Free() {
	if m.embed != nil {
		m.embed.free()
	}
	for _, b := range m.layers {
		mlx.Free(b.attnNorm, b.ffnNorm, b.qNorm, b.kNorm, b.postAttnNorm, b.postFFNNorm)
		b.moe.free()
		for _, l := range []*Linear{b.q, b.k, b.v, b.o, b.gate, b.up, b.down, b.qkv, b.gateUp} {
			if l != nil {
				l.free()
			}
		}
	}
	mlx.Free(m.norm, m.ropeFreqs, m.invFreq, m.localFreqs)
	m.gpu.free()
	m.gpu = nil
	m.Tokenizer.Close()
	if m.lmHead != nil && (m.embed == nil || m.lmHead.q != m.embed.q || m.lmHead.q == nil) {
		m.lmHead.free()
	}
	m.layers = nil
}

// weights lists every weight array once.
func (m *Model) weights() []*mlx.Array {
	var out []*mlx.Array
	add := func(as ...*mlx.Array) {
		for _, a := range as {
			if a != nil {
				out = append(out, a)
			}
		}
	}
	addLinear := func(l *Linear) {
		if l == nil {
			return
		}
		add(l.wT, l.bias)
		if l.q != nil {
			add(l.q.Weight, l.q.Scales, l.q.Biases)
		}
		if l.rq != nil {
			add(l.rq.Weight, l.rq.Scales, l.rq.Biases)
		}
	}
	add(m.embed.w, m.norm, m.ropeFreqs)
	if m.embed.q != nil {
		add(m.embed.q.Weight, m.embed.q.Scales, m.embed.q.Biases)
	}
	for _, b := range m.layers {
		add(b.attnNorm, b.ffnNorm, b.qNorm, b.kNorm, b.postAttnNorm, b.postFFNNorm)
		for _, l := range b.linears() {
			addLinear(l)
		}
		if b.moe != nil {
			addLinear(b.moe.router)
			add(b.moe.arrays()...)
		}
	}
	if m.lmHead != nil && m.lmHead.q == nil {
		addLinear(m.lmHead)
	}
	return out
}

// LMHead is the projection from the residual stream to the vocabulary (the
// embedding table when tied); steering's logit bias uses it.
func (m *Model) LMHead() *Linear { return m.lmHead }

// FinalNorm applies the model's final RMSNorm to h.
func (m *Model) FinalNorm(s *mlx.Scope, h *mlx.Array) *mlx.Array {
	return m.rmsNorm(s, h, m.norm)
}

// build loads every weight from src into a Model for cfg, naming tensors
// by format ("gguf" or the Hugging Face layout).
func build(cfg *Config, src *tensorSource, format string, dequantize bool) (*Model, error) {
	arch, ok := lookupArch(cfg.Architecture)
	if !ok {
		return nil, fmt.Errorf("%s: %w", src.file, unknownArch(cfg.Architecture))
	}
	gguf := format == "gguf"
	names := hfNames(arch)
	if gguf {
		names = ggufNames(arch)
	}
	if arch.Prepare != nil {
		if err := arch.Prepare(src, cfg, gguf); err != nil {
			return nil, fmt.Errorf("%s: %w", src.file, err)
		}
	}
	m := &Model{Config: cfg, DType: src.dtype, arch: arch, block: arch.block()}
	ok = false
	defer func() {
		if !ok {
			m.Free()
		}
	}()
	D, F, hd := cfg.HiddenSize, cfg.IntermediateSize, cfg.HeadDim
	qOut, kvOut := cfg.NumHeads*hd, cfg.NumKVHeads*hd
	if src.group != nil && src.group.Size() > 1 {
		tp, err := newTensorParallel(src.group, cfg, arch)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src.file, err)
		}
		m.tp = tp
	}
	// llama.cpp's converter stores gemma's norms with the one added.
	plusOne := arch.NormPlusOne && !gguf
	norm := func(name string, dim int) (*mlx.Array, error) {
		if name == "" {
			return nil, nil
		}
		return src.norm(name, dim, plusOne)
	}
	var err error
	if m.embed, err = src.embedding(names.embed, cfg.VocabSize, D, dequantize); err != nil {
		return nil, err
	}
	for i := 0; i < cfg.NumLayers; i++ {
		n := names.layer(i)
		b := &block{qNormFull: arch.QKNormFull}
		m.layers = append(m.layers, b)
		for _, w := range []struct {
			dst  **mlx.Array
			name string
		}{{&b.attnNorm, n.attnNorm}, {&b.ffnNorm, n.ffnNorm}, {&b.postAttnNorm, n.postAttnNorm}, {&b.postFFNNorm, n.postFFNNorm}} {
			if *w.dst, err = norm(w.name, D); err != nil {
				return nil, err
			}
		}
		qkvBias := arch.QKVBias || cfg.AttentionBias
		if b.q, err = src.linear(n.q, qOut, D, qkvBias, dequantize); err != nil {
			return nil, err
		}
		if b.k, err = src.linear(n.k, kvOut, D, qkvBias, dequantize); err != nil {
			return nil, err
		}
		if b.v, err = src.linear(n.v, kvOut, D, qkvBias, dequantize); err != nil {
			return nil, err
		}
		if b.o, err = src.linear(n.o, D, qOut, cfg.AttentionBias, dequantize); err != nil {
			return nil, err
		}
		if cfg.sparseLayer(i) {
			if b.moe, err = loadMoE(src, cfg, i, n, dequantize, m.tp); err != nil {
				return nil, err
			}
		} else {
			if b.gate, err = src.linear(n.gate, F, D, cfg.MLPBias, dequantize); err != nil {
				return nil, err
			}
			if b.up, err = src.linear(n.up, F, D, cfg.MLPBias, dequantize); err != nil {
				return nil, err
			}
			if b.down, err = src.linear(n.down, D, F, cfg.MLPBias, dequantize); err != nil {
				return nil, err
			}
		}
		if m.tp != nil {
			if err := m.tp.shardBlock(b, cfg); err != nil {
				return nil, fmt.Errorf("%s: layer %d: %w", src.file, i, err)
			}
			// Let go of the full tensors now, so a rank never holds more
			// than one layer's worth beyond its slices.
			src.dropUsed()
		}
		if b.qkv, err = fuseLinears(b.q, b.k, b.v); err != nil {
			return nil, fmt.Errorf("%s: fuse q/k/v of layer %d: %w", src.file, i, err)
		}
		if b.gate != nil {
			if b.gateUp, err = fuseLinears(b.gate, b.up); err != nil {
				return nil, fmt.Errorf("%s: fuse gate/up of layer %d: %w", src.file, i, err)
			}
		}
		if cfg.QKNorm {
			qn, kn := hd, hd
			if arch.QKNormFull {
				qn, kn = qOut, kvOut
			}
			if b.qNorm, err = norm(n.qNorm, qn); err != nil {
				return nil, err
			}
			if b.kNorm, err = norm(n.kNorm, kn); err != nil {
				return nil, err
			}
			if arch.QKNormFull && m.tp != nil {
				for _, w := range []**mlx.Array{&b.qNorm, &b.kNorm} {
					if err := m.tp.shardNorm(w, hd); err != nil {
						return nil, fmt.Errorf("%s: layer %d: q/k norm: %w", src.file, i, err)
					}
				}
			}
		}
	}
	if m.norm, err = norm(names.norm, D); err != nil {
		return nil, err
	}
	m.fusable = arch.Fusable && cfg.plain() && m.tp == nil
	switch {
	case src.has(names.lmHead + ".weight"):
		if m.lmHead, err = src.linear(names.lmHead, cfg.VocabSize, D, false, dequantize); err != nil {
			return nil, err
		}
	default:
		// Tied: the embedding table doubles as the output projection.
		if m.embed.q != nil {
			m.lmHead = &Linear{q: m.embed.q, out: cfg.VocabSize, in: D}
		} else {
			wT, err := mlx.Transpose(m.embed.w)
			if err != nil {
				return nil, err
			}
			m.lmHead = &Linear{wT: wT, rq: m.embed.rq, out: cfg.VocabSize, in: D}
		}
		if !cfg.TieEmbeddings {
			return nil, fmt.Errorf("%s: no lm_head weight (%s.weight) and tie_word_embeddings is false", src.file, names.lmHead)
		}
	}
	if m.ropeFreqs, err = ropeFrequencies(cfg); err != nil {
		return nil, err
	}
	if err := m.attentionSpecs(); err != nil {
		return nil, err
	}
	m.useRowProduct()
	// Materialise the weights now (conversions included) so the first
	// forward pass does not pay for loading.
	if err := mlx.Eval(m.weights()...); err != nil {
		return nil, fmt.Errorf("%s: %w", src.file, err)
	}
	if err := m.useGEMV(); err != nil {
		return nil, fmt.Errorf("%s: %w", src.file, err)
	}
	if err := m.useFusedBlocks(); err != nil {
		return nil, fmt.Errorf("%s: %w", src.file, err)
	}
	if err := m.useGPUBlocks(); err != nil {
		return nil, fmt.Errorf("%s: %w", src.file, err)
	}
	ok = true
	return m, nil
}

// ropeFrequencies returns MLX RoPE periods for llama3/linear scaling, or nil
// when the plain base applies.
func ropeFrequencies(cfg *Config) (*mlx.Array, error) {
	if cfg.RopeScaling == nil {
		return nil, nil
	}
	periods, err := ropePeriods(cfg)
	if err != nil {
		return nil, err
	}
	return mlx.FromFloat32s(periods)
}

// ropePeriods are RoPE's periods (theta = position / period) per rotated
// pair: base^(2i/head_dim), rescaled by the config's rope scaling.
func ropePeriods(cfg *Config) ([]float32, error) {
	rs := cfg.RopeScaling
	dims := cfg.RotaryDim()
	periods := make([]float32, dims/2)
	for i := range periods {
		periods[i] = float32(math.Pow(cfg.RopeTheta, float64(2*i)/float64(dims)))
	}
	if rs == nil {
		return periods, nil
	}
	switch rs.Type {
	case "llama3":
		lowWave := float64(rs.OriginalMaxPositionEmbeddings) / rs.LowFreqFactor
		highWave := float64(rs.OriginalMaxPositionEmbeddings) / rs.HighFreqFactor
		for i, p := range periods {
			invFreq := 1 / float64(p)
			wave := 2 * math.Pi / invFreq
			switch {
			case wave > lowWave:
				invFreq /= rs.Factor
			case wave >= highWave:
				smooth := (float64(rs.OriginalMaxPositionEmbeddings)/wave - rs.LowFreqFactor) / (rs.HighFreqFactor - rs.LowFreqFactor)
				invFreq = (1-smooth)*invFreq/rs.Factor + smooth*invFreq
			}
			periods[i] = float32(1 / invFreq)
		}
	case "linear":
		for i := range periods {
			periods[i] *= float32(rs.Factor)
		}
	case "rope_freqs":
		if len(rs.FreqFactors) != len(periods) {
			return nil, fmt.Errorf("config: %d rope_freqs factors for %d rotated pairs", len(rs.FreqFactors), len(periods))
		}
		for i := range periods {
			periods[i] = float32(math.Pow(cfg.RopeTheta, float64(2*i)/float64(dims)) * rs.FreqFactors[i])
		}
	default:
		return nil, fmt.Errorf("config: rope scaling type %q is not supported (llama3, linear)", rs.Type)
	}
	return periods, nil
}

// WeightsDescription says how the block weights are held and what the
// activations compute in, e.g. "4-bit affine (group 32) via quantized_matmul,
// compute float16" or "dense float32".
func (m *Model) WeightsDescription() string {
	if len(m.layers) == 0 {
		return ""
	}
	gpu := ""
	switch {
	case m.gpu != nil:
		gpu = ", fused GPU blocks for decode" + m.kernels.limit()
	case m.kernelsPlanned:
		gpu = ", " + m.kernels.String() + " for decode"
	}
	l := m.layers[0].q
	if l.q != nil {
		return fmt.Sprintf("%d-bit affine (group %d) via quantized_matmul, compute %s%s", l.q.Bits, l.q.GroupSize, m.DType, gpu)
	}
	if gpu != "" {
		return "dense " + m.DType.String() + gpu
	}
	fused := ""
	if m.FusedDecode() {
		fused = ", fused CPU blocks"
	}
	if b := m.layers[0]; b.qkv != nil && b.qkv.rq != nil {
		return fmt.Sprintf("dense %s for prefill, %d-bit row kernels (group %d)%s for decode", m.DType, b.qkv.rq.Bits, b.qkv.rq.GroupSize, fused)
	}
	if fused != "" {
		return "dense " + m.DType.String() + ", BLAS row products" + fused + " for decode"
	}
	return "dense " + m.DType.String()
}

// FusedDecode reports whether decode steps run each block fused: as one CPU
// primitive (mlx.DecodeBlock) or as genkit's five CUDA kernels
// (mlx.GPUDecodeBlock).
func (m *Model) FusedDecode() bool { return m.invFreq != nil || m.gpu != nil }

// gemvEnv is the setting planKernels reads: "0" turns genkit's CUDA kernels
// off, "all" gives them every model, anything else leaves it to the size
// rule.
const gemvEnv = "GENKIT_GEMV"

// useGEMV turns on genkit's CUDA matrix-vector kernels (mlx.GEMV, QGEMV)
// when the model runs on a CUDA GPU, for products of as many rows as
// planKernels allows for its size: decode steps of a few lanes then read
// each weight once (MLX multiplies more than one row with a general GEMM).
// Quantized weights are made row-contiguous (a no-op for most; GGUF tensors
// can load as strided views) and dense ones get their [out, in] view.
// GENKIT_GEMV=0 keeps MLX's products, GENKIT_GEMV=all takes every size. It
// runs after the weights are materialised.
func (m *Model) useGEMV() error {
	if mlx.GPUBackend() != "cuda" {
		return nil
	}
	if dev, err := mlx.DefaultDevice(); err != nil || dev != mlx.GPU {
		return nil
	}
	m.kernels = planKernels(m.stepBytes(), os.Getenv(gemvEnv))
	m.kernelsPlanned = true
	if m.kernels.rows == 0 {
		return nil
	}
	var views []*mlx.Array
	prepare := func(l *Linear) error {
		if l == nil {
			return nil
		}
		if l.q != nil {
			shared := l.q == m.embed.q // a tied head reads the embedding's table
			q, err := contiguousQ(l.q)
			if err != nil {
				return err
			}
			l.q = q
			if shared {
				m.embed.q = q
			}
			views = append(views, q.Weight, q.Scales, q.Biases)
		} else if l.wT != nil {
			w, err := mlx.Transpose(l.wT)
			if err != nil {
				return err
			}
			l.w = w
			views = append(views, w)
		}
		l.gemvRows = m.kernels.rows
		return nil
	}
	for _, b := range m.layers {
		for _, l := range b.linears() {
			if err := prepare(l); err != nil {
				return err
			}
		}
	}
	if err := prepare(m.lmHead); err != nil {
		return err
	}
	return mlx.Eval(views...)
}

// useRowProduct turns on matrix-vector products for the dense float32
// linears when the model runs on the CPU with a BLAS that has them: a decode
// step then reads each weight once instead of packing it for a GEMM (measured
// on the default model: see docs/benchmarks.md).
func (m *Model) useRowProduct() {
	if !rowProducts(m.DType) || !mlx.RowProductAvailable() {
		return
	}
	for _, b := range m.layers {
		for _, l := range b.linears() {
			if l != nil && l.q == nil {
				l.rows = true
			}
		}
	}
	if m.lmHead != nil && m.lmHead.q == nil {
		m.lmHead.rows = true
	}
}

// attentionSpecs fills each layer's attention: the sliding window of
// sliding layers, and RoPE's base and periods (a sliding layer's own base
// when the config gives one, unscaled, as transformers does for gemma3).
func (m *Model) attentionSpecs() error {
	cfg := m.Config
	global := attnSpec{base: float32(cfg.RopeTheta), freqs: m.ropeFreqs}
	local := global
	if cfg.LocalRopeTheta != 0 && (cfg.LocalRopeTheta != cfg.RopeTheta || cfg.RopeScaling != nil) {
		lc := *cfg
		lc.RopeTheta, lc.RopeScaling = cfg.LocalRopeTheta, nil
		local = attnSpec{base: float32(lc.RopeTheta)}
		if cfg.RopeScaling != nil {
			// MLX's RoPE takes either a base or periods: give the local
			// layers their plain periods beside the global scaled ones.
			p, err := ropePeriods(&lc)
			if err != nil {
				return err
			}
			if m.localFreqs, err = mlx.FromFloat32s(p); err != nil {
				return err
			}
			local.freqs = m.localFreqs
		}
	}
	m.attn = make([]attnSpec, cfg.NumLayers)
	for i := range m.attn {
		if cfg.Sliding(i) {
			m.attn[i] = local
			m.attn[i].window = cfg.SlidingWindow
		} else {
			m.attn[i] = global
		}
	}
	return nil
}

package engine

import (
	"math"
	"os"
	"path/filepath"
	"sync"

	"github.com/mlx-genkit/genkit/mlx"
)

// gpuBlocks is what the fused GPU decode block (mlx.GPUDecodeBlock) reads
// beside the weights: float32 copies of every block's norms, RoPE's inverse
// frequencies and the block's constants.
type gpuBlocks struct {
	// norms per layer: attention, MLP, q and k (the last two nil unless the
	// model normalises q and k per head).
	norms   [][4]*mlx.Array
	invFreq *mlx.Array // float32 [head_dim / 2]
	prm     *mlx.Array // float32 [eps, attention scale]
	dtype   mlx.Dtype  // the activations' dtype the kernels were checked for
	// oneKernel asks for each block as one kernel (a step's workspace,
	// mlx.GPUBlockWorkspace) rather than five, as planKernels decides;
	// GENKIT_BLOCK_KERNEL=0 or 1 overrides it (for measuring). ffn is the
	// widest MLP, for the workspace's size.
	oneKernel bool
	ffn       int
}

// workspace is the block kernel's workspace for a decode step of B lanes,
// or nil when the blocks run as five kernels.
func (g *gpuBlocks) workspace(s *mlx.Scope, cfg *Config, B int) *mlx.Array {
	if !g.oneKernel {
		return nil
	}
	return s.Track(mlx.GPUBlockWorkspace(B, cfg.HiddenSize, cfg.NumHeads, cfg.NumKVHeads, cfg.HeadDim, g.ffn, g.dtype))
}

func (g *gpuBlocks) free() {
	if g == nil {
		return
	}
	for _, n := range g.norms {
		mlx.Free(n[:]...)
	}
	mlx.Free(g.invFreq, g.prm)
}

// useGPUBlocks turns on the fused GPU decode block when planKernels gave
// the model genkit's CUDA kernels (useGEMV) and every block fits them:
// fused q/k/v and gate/up weights, dense in the compute dtype or 4/8-bit
// affine with groups the kernels' loads divide, no gate/up bias, an even
// head_dim of at most 256. Decode steps of as many lanes as the plan's rows
// are then one kernel a block where the block kernel takes the block, else
// five (measured against the op-by-op graph in docs/benchmarks.md); wider
// steps run op by op on MLX's products.
// GENKIT_FUSED_BLOCKS=0 turns it off, as on the CPU. It runs after useGEMV.
func (m *Model) useGPUBlocks() error {
	setKernelDir()
	if os.Getenv("GENKIT_FUSED_BLOCKS") == "0" || !m.fusable || m.kernels.rows == 0 {
		return nil
	}
	cfg := m.Config
	dt := m.DType
	if dt != mlx.Float32 && dt != mlx.Float16 && dt != mlx.Bfloat16 {
		return nil
	}
	hd, H, Hkv := cfg.HeadDim, cfg.NumHeads, cfg.NumKVHeads
	if hd%2 != 0 || hd > 256 || H <= 0 || Hkv <= 0 || H%Hkv != 0 {
		return nil
	}
	for _, b := range m.layers {
		if b.qkv == nil || b.gateUp == nil || b.gateUp.bias != nil || (b.qNorm == nil) != (b.kNorm == nil) {
			return nil
		}
		for _, l := range []*Linear{b.qkv, b.o, b.gateUp, b.down} {
			if !gpuProductFits(l, dt) {
				return nil
			}
		}
	}
	g := &gpuBlocks{dtype: dt, oneKernel: m.kernels.oneKernel}
	switch os.Getenv("GENKIT_BLOCK_KERNEL") {
	case "0":
		g.oneKernel = false
	case "1":
		g.oneKernel = true
	}
	for _, b := range m.layers {
		g.ffn = max(g.ffn, b.gate.out)
	}
	ok := false
	defer func() {
		if !ok {
			g.free()
		}
	}()
	var err error
	if g.invFreq, err = invFrequencies(cfg); err != nil {
		return err
	}
	scale := float32(1 / math.Sqrt(float64(hd)))
	if g.prm, err = mlx.FromFloat32s([]float32{float32(cfg.RMSNormEps), scale}, 2); err != nil {
		return err
	}
	all := []*mlx.Array{g.invFreq, g.prm}
	for _, b := range m.layers {
		var n [4]*mlx.Array
		for j, w := range []*mlx.Array{b.attnNorm, b.ffnNorm, b.qNorm, b.kNorm} {
			if w == nil {
				continue
			}
			if n[j], err = mlx.AsType(w, mlx.Float32); err != nil {
				mlx.Free(n[:]...)
				return err
			}
			all = append(all, n[j])
		}
		g.norms = append(g.norms, n)
	}
	if err := mlx.Eval(all...); err != nil {
		return err
	}
	ok = true
	m.gpu = g
	return nil
}

// gpuProductFits reports whether the GPU product kernel reads l with
// activations of dtype dt: 16-byte rows of dense weights in dt, or 4/8-bit
// weights whose groups hold whole 16-byte loads, scales in dt.
func gpuProductFits(l *Linear, dt mlx.Dtype) bool {
	if l.gemvRows == 0 {
		return false
	}
	if l.bias != nil && l.bias.Dtype() != dt {
		return false
	}
	if q := l.q; q != nil {
		vals := 4 * (32 / q.Bits)
		return (q.Bits == 4 || q.Bits == 8) && q.Scales.Dtype() == dt && q.Biases.Dtype() == dt &&
			l.in%vals == 0 && q.GroupSize%vals == 0
	}
	return l.w != nil && l.w.Dtype() == dt && (l.in*dt.Size())%16 == 0
}

// gpuMeta is the fused GPU block's int32 [1 + B] positions for a decode
// step at the cache's offset: the offset, then each lane's padded positions.
func gpuMeta(offset, lanes int, pads []int) (*mlx.Array, error) {
	vals := make([]int32, 1+lanes)
	vals[0] = int32(offset)
	for b, p := range pads {
		vals[1+b] = int32(p)
	}
	return mlx.FromInt32s(vals, 1+lanes)
}

// gpuBlock runs block i on h ([B, 1, D]) as mlx.GPUDecodeBlock, writing the
// new keys and values into the cache at its offset; with a step's
// workspace ws, as one kernel where it takes the block, after the block
// kernel that produced after (nil: h's producer).
func (m *Model) gpuBlock(s *mlx.Scope, i int, h *mlx.Array, cache *Cache, meta, ws, after *mlx.Array) *mlx.Array {
	if s.Err() != nil {
		return nil
	}
	cfg := m.Config
	b := m.layers[i]
	if err := cache.reserve(i, h.Dim(0), cfg.NumKVHeads, cache.offset+1, cfg.HeadDim, h.Dtype()); err != nil {
		s.Fail(err)
		return nil
	}
	lin := func(l *Linear) mlx.BlockLinear {
		bl := mlx.BlockLinear{Q: l.q, Bias: l.bias, In: l.in, Out: l.out}
		if l.q == nil {
			bl.Dense = l.w
		}
		return bl
	}
	n := m.gpu.norms[i]
	return s.Track(mlx.GPUDecodeBlock(&mlx.DecodeBlockArgs{
		H: h, AttnNorm: n[0], FFNNorm: n[1], QNorm: n[2], KNorm: n[3],
		KCache: cache.keys[i], VCache: cache.values[i], InvFreq: m.gpu.invFreq,
		QKV: lin(b.qkv), O: lin(b.o), GateUp: lin(b.gateUp), Down: lin(b.down),
		Heads: cfg.NumHeads, KVHeads: cfg.NumKVHeads, HeadDim: cfg.HeadDim, Intermediate: b.gate.out,
		Offset: cache.offset, Traditional: cfg.TraditionalRoPE, Workspace: ws, After: after,
	}, meta, m.gpu.prm))
}

var kernelDirOnce sync.Once

// setKernelDir gives the mlx package genkit's cache dir for the CUDA kernels
// it compiles once and keeps (CacheDir()/kernels; GENKIT_KERNEL_CACHE=0
// turns that off, =DIR puts them elsewhere). Without a cache dir the
// kernels are compiled in every process, as MLX does.
func setKernelDir() {
	kernelDirOnce.Do(func() {
		if d, err := CacheDir(); err == nil {
			mlx.SetPrecompiledKernelDir(filepath.Join(d, "kernels"))
		}
	})
}

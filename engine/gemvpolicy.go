package engine

import (
	"fmt"

	"github.com/mlx-genkit/genkit/mlx"
)

// Below a size, a decode step is bound by launches and graph work, which
// genkit's CUDA kernels (the matrix-vector products and the fused decode
// block) cut; above it by the products themselves, where MLX's own kernels
// are faster, and sooner for quantized weights than for dense ones (the
// kernels unpack a 4-bit row with one warp). Measured on H200s, genkit
// alone, decode steps/s at 1 / 2 / 8 lanes with every kernel against
// GENKIT_GEMV=0 (docs/gpu/results-2026-11-27h-h200x2.txt; the SmolLM2 rows
// are session 5's, against the fused blocks off: docs/benchmarks.md):
//
//	SmolLM2-135M fp32,  0.54 GB a step: 515 / 422 / 320 against 204 / 255 / 214
//	SmolLM2-135M 4-bit, 0.10 GB:        544 / 421 / 220 against 170 / 191 / 192
//	Qwen3-0.6B bf16,    1.19 GB:        531 / 378 / 185 against 325 / 222 / 131
//	Qwen3-0.6B 4-bit,   0.35 GB:        334 / 214 /  86 against 317 / 299 / 177
//	Qwen3-4B bf16,      8.0 GB:         181 / 131 /  50 against 151 /  95 / 148
//	Qwen3-4B 4-bit,     2.3 GB:          71 /  47 /  16 against 184 / 119 /  49
//
// denseLaunchBoundBytes and quantLaunchBoundBytes are the most weight
// bytes a step may read for every product of up to mlx.GEMVMaxRows rows to
// take the kernels, set between the largest size measured faster with them
// and the smallest measured slower.
const (
	denseLaunchBoundBytes = 2 << 30
	quantLaunchBoundBytes = 256 << 20
)

// bandwidthBoundDenseRows is how many rows the matrix-vector kernels take
// for a dense model above denseLaunchBoundBytes: MLX multiplies two rows
// with a general GEMM (Qwen3-4B's shape in bfloat16 at 2 lanes: 131 steps/s
// with the kernels, 95 without), while at 8 rows its GEMM is faster (148
// against 50). Quantized weights above their bound keep MLX's products.
const bandwidthBoundDenseRows = 2

// gemvAll, as GENKIT_GEMV, makes genkit's CUDA kernels take every product of
// up to mlx.GEMVMaxRows rows whatever the model's size ("0" turns them off:
// gemvEnv); for measuring the policy below.
const gemvAll = "all"

// kernelPlan is which decode products genkit's CUDA kernels take.
type kernelPlan struct {
	// rows is the most rows of a product the matrix-vector kernels take
	// (0: none; MLX's products throughout).
	rows int
	// fused says whether decode steps run each block as the fused GPU block.
	fused bool
}

// planKernels is the one rule for how much of a CUDA decode genkit's own
// kernels run, from the weight bytes a decode step reads (one rank's, on a
// sharded model) and whether they are quantized, and the GENKIT_GEMV
// setting ("0": none, "all": every product of up to mlx.GEMVMaxRows rows;
// anything else: by size).
func planKernels(stepBytes int64, quantized bool, setting string) kernelPlan {
	bound := int64(denseLaunchBoundBytes)
	if quantized {
		bound = quantLaunchBoundBytes
	}
	switch {
	case setting == "0":
		return kernelPlan{}
	case setting == gemvAll || stepBytes <= bound:
		return kernelPlan{rows: mlx.GEMVMaxRows, fused: true}
	case quantized:
		return kernelPlan{}
	default:
		return kernelPlan{rows: bandwidthBoundDenseRows}
	}
}

// stepBytes is the bytes of the weights a decode step of one lane reads
// through the model's products (the blocks' projections, the top k experts'
// share of a mixture's, and the head) and whether any of them is quantized.
func (m *Model) stepBytes() (int64, bool) {
	var n int64
	quantized := false
	// read is the bytes of a weight held quantized (q) or dense.
	read := func(q *mlx.Quantized, dense *mlx.Array) int64 {
		if q != nil {
			quantized = true
			return nbytes(q.Weight) + nbytes(q.Scales) + nbytes(q.Biases)
		}
		return nbytes(dense)
	}
	linears := func(ls ...*Linear) {
		for _, l := range ls {
			if l != nil {
				n += read(l.q, l.wT)
			}
		}
	}
	for _, b := range m.layers {
		// A step reads the fused q/k/v and gate/up weights where the block
		// has them, not the separate ones beside them.
		linears(b.qkv, b.gateUp, b.o, b.down)
		if b.qkv == nil {
			linears(b.q, b.k, b.v)
		}
		if b.gateUp == nil {
			linears(b.gate, b.up)
		}
		if e := b.moe; e != nil {
			linears(e.router)
			// A step of one lane reads topK of the experts' weights.
			var stacks int64
			for _, st := range []*expertStack{e.gateUp, e.gate, e.up, e.down} {
				if st != nil {
					stacks += read(st.q, st.wT)
				}
			}
			if e.experts > 0 {
				stacks = stacks * int64(e.topK) / int64(e.experts)
			}
			n += stacks
		}
	}
	linears(m.lmHead)
	return n, quantized
}

// nbytes is a's size in bytes, 0 for nil.
func nbytes(a *mlx.Array) int64 {
	if a == nil {
		return 0
	}
	return int64(a.Size()) * int64(a.Dtype().Size())
}

// String says in words which products genkit's CUDA kernels take,
// for the model's description.
func (p kernelPlan) String() string {
	switch {
	case p.rows == 0:
		return "MLX's products"
	case p.fused:
		return fmt.Sprintf("genkit's CUDA kernels up to %d rows", p.rows)
	default:
		return fmt.Sprintf("genkit's matrix-vector kernels up to %d rows, MLX's products above", p.rows)
	}
}

package engine

import (
	"fmt"

	"github.com/mlx-genkit/genkit/mlx"
)

// genkit's CUDA kernels (mlx: the tiled product kernel, attention, and the
// fused decode block of five kernels) beat MLX's products at every size for
// one and two lanes of decode, and at eight lanes up to a size: above it
// MLX's general GEMM, on tensor cores, multiplies eight rows faster than a
// matrix-vector kernel that adds each row's multiply-adds. Measured on one
// H200, genkit alone, decode steps/s at 1 / 2 / 8 lanes, every kernel
// against GENKIT_GEMV=0 (docs/gpu/results-2026-11-27i-h200x2.txt):
//
//	SmolLM2-135M fp32,  0.54 GB a step: 477 / 476 / 285 against 204 / 255 / 214 (session 5)
//	SmolLM2-135M 4-bit, 0.10 GB:        495 / 374 / 253 against 170 / 191 / 192 (session 5)
//	Qwen3-0.6B bf16,    1.19 GB:        404 / 375 / 244 against 276 / 220 / 232
//	Qwen3-0.6B 4-bit,   0.35 GB:        345 / 386 / 182 against 331 / 274 / 189
//	Qwen3-4B bf16,      8.0 GB:         231 / 188 /  77 against 198 / 113 / 140
//	Qwen3-4B 4-bit,     2.3 GB:         238 / 165 /  35 against 211 / 143 /  49
//
// launchBoundBytes is the most weight bytes a decode step may read for
// steps of up to mlx.GEMVMaxRows lanes to take the kernels, set between the
// largest size measured no slower with them at eight lanes (1.19 GB; 0.35 GB
// of 4-bit weights ties) and the smallest measured slower (2.3 GB).
const launchBoundBytes = 2 << 30

// bandwidthBoundRows is how many lanes a decode step above launchBoundBytes
// may have and still take the kernels; wider steps use MLX's products.
const bandwidthBoundRows = 2

// gemvAll, as GENKIT_GEMV, makes genkit's CUDA kernels take every product of
// up to mlx.GEMVMaxRows rows whatever the model's size ("0" turns them off:
// gemvEnv); for measuring the policy below.
const gemvAll = "all"

// kernelPlan is which decode steps genkit's CUDA kernels take.
type kernelPlan struct {
	// rows is the most lanes (rows of a product) of a decode step the
	// kernels and the fused blocks take (0: none; MLX's products
	// throughout).
	rows int
	// oneKernel runs each fused block as one kernel (mlx.GPUBlockWorkspace)
	// rather than five: where a step is launch-bound, the plan that takes
	// every lane count. Measured, decode steps/s at 1 / 2 / 8 lanes, one
	// kernel against five, one call each (docs/gpu/hostshare-2026-11-27k-h100.txt,
	// then -m-h200.txt after the attention kept several reads in flight):
	//
	//	SmolLM2-135M fp32, H100:  604 / 565 / 296 against 542 / 479 / 290
	//	SmolLM2-135M GGUF, H100:  615 / 531 / 351 against 488 / 422 / 254
	//	Qwen3-4B bf16, H100:      201 / 169 against 197 / 168
	//	Qwen3-4B 4-bit, H100:     203 / 164 against 239 / 170
	//	SmolLM2-135M fp32, H200:  497 / 447 / 278 against 352 / 327 / 272
	//	SmolLM2-135M GGUF, H200:  426 / 388 / 271 against 307 / 277 / 219
	//	Qwen3-4B bf16, H200:      174 / 139 against 175 / 146
	//	Qwen3-4B 4-bit, H200:     194 / 154 against 176 / 135
	//
	// The small models gain at every lane count; the 4B's results split, so
	// it keeps five kernels until a run with every peer settles it.
	oneKernel bool
}

// planKernels is the one rule for how much of a CUDA decode genkit's own
// kernels run, from the weight bytes a decode step reads (one rank's, on a
// sharded model) and the GENKIT_GEMV setting ("0": none, "all": every step
// of up to mlx.GEMVMaxRows lanes; anything else: by size).
func planKernels(stepBytes int64, setting string) kernelPlan {
	switch {
	case setting == "0":
		return kernelPlan{}
	case setting == gemvAll || stepBytes <= launchBoundBytes:
		return kernelPlan{rows: mlx.GEMVMaxRows, oneKernel: true}
	default:
		return kernelPlan{rows: bandwidthBoundRows}
	}
}

// stepBytes is the bytes of the weights a decode step of one lane reads
// through the model's products (the blocks' projections, the top k experts'
// share of a mixture's, and the head).
func (m *Model) stepBytes() int64 {
	var n int64
	// read is the bytes of a weight held quantized (q) or dense.
	read := func(q *mlx.Quantized, dense *mlx.Array) int64 {
		if q != nil {
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
	return n
}

// nbytes is a's size in bytes, 0 for nil.
func nbytes(a *mlx.Array) int64 {
	if a == nil {
		return 0
	}
	return int64(a.Size()) * int64(a.Dtype().Size())
}

// String says in words which decode steps genkit's CUDA kernels take,
// for the model's description.
func (p kernelPlan) String() string {
	switch {
	case p.rows == 0:
		return "MLX's products"
	case p.rows >= mlx.GEMVMaxRows:
		return fmt.Sprintf("genkit's CUDA kernels up to %d lanes", p.rows)
	default:
		return "genkit's CUDA kernels" + p.limit()
	}
}

// limit says which decode steps a plan of fewer than mlx.GEMVMaxRows rows
// leaves to MLX's products ("" for a plan without that limit).
func (p kernelPlan) limit() string {
	if p.rows <= 0 || p.rows >= mlx.GEMVMaxRows {
		return ""
	}
	return fmt.Sprintf(" up to %d lanes, MLX's products above", p.rows)
}

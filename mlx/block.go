package mlx

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import "unsafe"

// BlockLinear is one linear layer of a fused decode block: Dense (a float32
// wT [In, Out], as the engine keeps dense weights) or Q (4- or 8-bit
// affine), and an optional float32 Bias [Out].
type BlockLinear struct {
	Dense   *Array
	Q       *Quantized
	Bias    *Array
	In, Out int
}

// DecodeBlockArgs describe one decoder block for DecodeBlock. All arrays are
// float32; QNorm and KNorm are nil unless the model RMS-normalises q and k
// per head; InvFreq [HeadDim/2] holds RoPE's inverse frequencies.
type DecodeBlockArgs struct {
	H, AttnNorm, FFNNorm, KCache, VCache, InvFreq, QNorm, KNorm *Array
	QKV, O, GateUp, Down                                        BlockLinear
	Heads, KVHeads, HeadDim, Intermediate                       int
	// Offset is the cache position the new token takes in every lane.
	Offset int
	// Pads are the lanes' leading padded positions (nil: none).
	Pads        []int
	Traditional bool
	Eps, Scale  float32
	// Workspace (GPUBlockWorkspace) asks GPUDecodeBlock for one kernel a
	// block; nil runs five. DecodeBlock ignores it.
	Workspace *Array
	// After is the previous block's output when H is not it (a hook
	// replaced it): the block kernel then runs after that block's, as it
	// must (they share the workspace and each fills the GPU). nil: H is.
	After *Array
}

// DecodeBlock runs a whole decoder block for one new position per lane ([B,
// 1, D]) as a single CPU primitive: norms, the fused q/k/v projection, RoPE,
// attention over the cache, the output projection, the gated MLP and both
// residuals. It writes the new keys and values into KCache and VCache in
// place, so those must be float32 [B, Hkv, capacity > Offset, HeadDim]
// arrays that only the engine's cache holds. Decode steps of a few lanes on
// the CPU are dominated by per-op graph work; one op per block removes it.
func DecodeBlock(a *DecodeBlockArgs) (*Array, error) {
	args, err := cBlockArgs(a)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(args))
	var pads *C.int
	if len(a.Pads) > 0 {
		p := (*[1 << 20]C.int)(C.malloc(C.size_t(len(a.Pads)) * C.size_t(unsafe.Sizeof(C.int(0)))))[:len(a.Pads):len(a.Pads)]
		for i, v := range a.Pads {
			p[i] = C.int(v)
		}
		pads = &p[0]
		defer C.free(unsafe.Pointer(pads))
	}
	return call("decode_block", func(o *C.gk_array) C.int {
		return C.gk_decode_block(o, args, pads, C.int(len(a.Pads)))
	}, a.H, a.AttnNorm, a.FFNNorm, a.KCache, a.VCache, a.InvFreq)
}

// GPUDecodeBlock runs the block described by a for one new position per
// lane on a CUDA GPU as five of genkit's kernels (mlx/shim.cpp): RMSNorm
// with the fused q/k/v product; q/k norms, RoPE, the cache write and
// attention; the output product with its residual; RMSNorm with gate/up and
// SwiGLU; the down product with its residual. Given a Workspace, the five
// run as stages of one kernel where that kernel takes the block. Unlike DecodeBlock, arrays
// are in H's dtype (float32, float16 or bfloat16) except the norms and
// InvFreq (float32), dense weights are W [Out, In] (BlockLinear.Dense
// holds that view here), and the positions come from the device array meta
// (int32 [1 + B]: the cache offset, then each lane's padded positions) so
// the step's graph has the same shapes at every position. prm is float32
// [eps, attention scale]. The new keys and values are written into KCache
// and VCache in place, so those must be row-contiguous [B, Hkv, capacity >
// Offset, HeadDim] arrays that only the engine's cache holds.
func GPUDecodeBlock(a *DecodeBlockArgs, meta, prm *Array) (*Array, error) {
	args, err := cBlockArgs(a)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(args))
	return call("gpu_decode_block", func(o *C.gk_array) C.int {
		return C.gk_gpu_decode_block(o, args, meta.c, prm.c)
	}, a.H, a.AttnNorm, a.FFNNorm, a.KCache, a.VCache, a.InvFreq, meta, prm)
}

// cBlockArgs is a as the C layer reads it, in C memory the caller frees.
func cBlockArgs(a *DecodeBlockArgs) (*C.gk_decode_block_args, error) {
	lin := func(l BlockLinear) C.gk_block_linear {
		var c C.gk_block_linear
		if l.Q != nil {
			c.w, c.scales, c.biases = l.Q.Weight.c, l.Q.Scales.c, l.Q.Biases.c
			c.bits, c.group = C.int(l.Q.Bits), C.int(l.Q.GroupSize)
		} else if l.Dense != nil {
			c.w = l.Dense.c
		}
		if l.Bias != nil {
			c.bias = l.Bias.c
		}
		c.in, c.out = C.int(l.In), C.int(l.Out)
		return c
	}
	for _, l := range []BlockLinear{a.QKV, a.O, a.GateUp, a.Down} {
		if l.Q == nil && l.Dense == nil {
			return nil, &Error{Op: "decode_block", Msg: "a linear layer has no weight"}
		}
	}
	args := (*C.gk_decode_block_args)(C.calloc(1, C.size_t(unsafe.Sizeof(C.gk_decode_block_args{}))))
	handle := func(x *Array) C.gk_array {
		if x == nil {
			return C.gk_array{}
		}
		return x.c
	}
	args.h, args.attn_norm, args.ffn_norm = handle(a.H), handle(a.AttnNorm), handle(a.FFNNorm)
	args.k_cache, args.v_cache, args.inv_freq = handle(a.KCache), handle(a.VCache), handle(a.InvFreq)
	args.q_norm, args.k_norm = handle(a.QNorm), handle(a.KNorm)
	args.qkv, args.o, args.gate_up, args.down = lin(a.QKV), lin(a.O), lin(a.GateUp), lin(a.Down)
	args.heads, args.kv_heads, args.head_dim = C.int(a.Heads), C.int(a.KVHeads), C.int(a.HeadDim)
	args.intermediate, args.offset = C.int(a.Intermediate), C.int(a.Offset)
	args.traditional = cbool(a.Traditional)
	args.eps, args.scale = C.float(a.Eps), C.float(a.Scale)
	args.ws, args.after = handle(a.Workspace), handle(a.After)
	return args, nil
}

// GPUBlockWorkspace is a zeroed workspace for one decode step of
// GPUDecodeBlock as one kernel a block (its grid's barrier and the block's
// intermediate rows): lanes, the model's hidden size, its head counts and
// size, the MLP's intermediate size and the activations' dtype. The step's
// blocks share it, one after another; each step needs its own.
func GPUBlockWorkspace(lanes, hidden, heads, kvHeads, headDim, intermediate int, dt Dtype) (*Array, error) {
	return call("gpu_block_workspace", func(o *C.gk_array) C.int {
		return C.gk_gpu_block_workspace(o, C.int(lanes), C.int(hidden), C.int(heads), C.int(kvHeads),
			C.int(headDim), C.int(intermediate), C.int(dt))
	})
}

// GPUBlockKernels counts the decoder blocks GPUDecodeBlock has built as one
// kernel in this process (the rest ran as five).
func GPUBlockKernels() int64 { return int64(C.gk_gpu_block_kernels()) }

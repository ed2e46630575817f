package mlx

/*
#include "shim.h"
*/
import "C"

// RandomKey makes a PRNG key from a seed. Keys make random ops reproducible:
// the same key gives the same numbers on every run.
func RandomKey(seed uint64) (*Array, error) {
	return call("random_key", func(o *C.gk_array) C.int { return C.gk_random_key(o, C.uint64_t(seed)) })
}

// RandomSplit derives num independent keys (shape [num, 2]) from key.
func RandomSplit(key *Array, num int) (*Array, error) {
	return call("random_split", func(o *C.gk_array) C.int { return C.gk_random_split(o, key.c, C.int(num)) }, key)
}

// RandomUniform draws numbers in [0, 1) of dtype dt.
func RandomUniform(key *Array, dt Dtype, shape ...int) (*Array, error) {
	sp, n := cints(shape)
	return call("random_uniform", func(o *C.gk_array) C.int { return C.gk_random_uniform(o, sp, n, C.int(dt), key.c) }, key)
}

// RandomGumbel draws standard Gumbel noise of dtype dt.
func RandomGumbel(key *Array, dt Dtype, shape ...int) (*Array, error) {
	sp, n := cints(shape)
	return call("random_gumbel", func(o *C.gk_array) C.int { return C.gk_random_gumbel(o, sp, n, C.int(dt), key.c) }, key)
}

// RandomCategorical samples indices along axis from unnormalized log-probabilities.
func RandomCategorical(logits *Array, axis int, key *Array) (*Array, error) {
	return call("random_categorical", func(o *C.gk_array) C.int {
		return C.gk_random_categorical(o, logits.c, C.int(axis), key.c)
	}, logits, key)
}

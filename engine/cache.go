package engine

import (
	"fmt"

	"github.com/mlx-genkit/genkit/mlx"
)

// cacheStep is how many positions a KV cache grows by at a time.
const cacheStep = 256

// Cache holds the keys and values of every layer for a batch of B lanes,
// growing in steps of cacheStep positions.
type Cache struct {
	keys, values []*mlx.Array // per layer [B, Hkv, capacity, head_dim]
	offset       int          // positions filled
	batch        int
}

// NewCache makes an empty cache for m and batch lanes.
func (m *Model) NewCache(batch int) *Cache {
	return &Cache{keys: make([]*mlx.Array, m.Config.NumLayers), values: make([]*mlx.Array, m.Config.NumLayers), batch: batch}
}

// Offset is the number of positions already in the cache.
func (c *Cache) Offset() int { return c.offset }

// Batch is the number of lanes.
func (c *Cache) Batch() int { return c.batch }

// update writes k and v ([B, Hkv, L, D]) at the current offset of layer i and
// returns the filled part of the cache. The offset advances in advance().
func (c *Cache) update(s *mlx.Scope, i int, k, v *mlx.Array) (*mlx.Array, *mlx.Array, error) {
	sh := k.Shape()
	b, h, l, d := sh[0], sh[1], sh[2], sh[3]
	if b != c.batch {
		return nil, nil, fmt.Errorf("cache: batch %d, forward has %d lanes", c.batch, b)
	}
	end := c.offset + l
	if err := c.reserve(i, b, h, end, d, k.Dtype()); err != nil {
		return nil, nil, err
	}
	for j, slot := range []*[]*mlx.Array{&c.keys, &c.values} {
		x := k
		if j == 1 {
			x = v
		}
		upd, err := mlx.SliceUpdate((*slot)[i], x, []int{0, 0, c.offset, 0}, []int{b, h, end, d}, nil)
		if err != nil {
			return nil, nil, err
		}
		(*slot)[i].Free()
		(*slot)[i] = upd
	}
	kk := s.Track(mlx.Slice(c.keys[i], []int{0, 0, 0, 0}, []int{b, h, end, d}, nil))
	vv := s.Track(mlx.Slice(c.values[i], []int{0, 0, 0, 0}, []int{b, h, end, d}, nil))
	return kk, vv, s.Err()
}

// reserve makes layer i's arrays [b, h, capacity >= end, d], growing them in
// steps of cacheStep positions and keeping what is filled.
func (c *Cache) reserve(i, b, h, end, d int, dt mlx.Dtype) error {
	if c.keys[i] != nil && c.keys[i].Dim(2) >= end {
		return nil
	}
	newCap := (end + cacheStep - 1) / cacheStep * cacheStep
	for _, slot := range []*[]*mlx.Array{&c.keys, &c.values} {
		grown, err := mlx.Zeros(dt, b, h, newCap, d)
		if err != nil {
			return err
		}
		if old := (*slot)[i]; old != nil {
			filled, err := mlx.Slice(old, []int{0, 0, 0, 0}, []int{b, h, c.offset, d}, nil)
			if err == nil {
				var g2 *mlx.Array
				g2, err = mlx.SliceUpdate(grown, filled, []int{0, 0, 0, 0}, []int{b, h, c.offset, d}, nil)
				grown.Free()
				grown = g2
			}
			filled.Free()
			old.Free()
			if err != nil {
				return err
			}
		} else {
			// A materialised buffer of zeros: the fused decode block writes
			// into it in place.
			c2, err := mlx.Contiguous(grown)
			grown.Free()
			if err != nil {
				return err
			}
			grown = c2
		}
		(*slot)[i] = grown
	}
	return nil
}

func (c *Cache) arrays() []*mlx.Array {
	var out []*mlx.Array
	for i := range c.keys {
		if c.keys[i] != nil {
			out = append(out, c.keys[i], c.values[i])
		}
	}
	return out
}

// Free releases the cache's arrays.
func (c *Cache) Free() {
	mlx.Free(c.arrays()...)
	for i := range c.keys {
		c.keys[i], c.values[i] = nil, nil
	}
	c.offset = 0
}

// Reorder makes lane i of the cache a copy of lane idx[i] (beam search keeps
// the beams it extends). It must run on the MLX thread.
func (c *Cache) Reorder(idx []int) error {
	if len(idx) != c.batch {
		return fmt.Errorf("cache: reorder with %d indices for %d lanes", len(idx), c.batch)
	}
	ids := make([]int32, len(idx))
	for i, x := range idx {
		if x < 0 || x >= c.batch {
			return fmt.Errorf("cache: reorder index %d outside [0, %d)", x, c.batch)
		}
		ids[i] = int32(x)
	}
	sel, err := mlx.FromInt32s(ids, len(ids))
	if err != nil {
		return err
	}
	defer sel.Free()
	for _, slot := range [][]*mlx.Array{c.keys, c.values} {
		for i, a := range slot {
			if a == nil {
				continue
			}
			r, err := mlx.Take(a, sel, 0)
			if err != nil {
				return err
			}
			a.Free()
			slot[i] = r
		}
	}
	return nil
}

package sessions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/mlx-genkit/genkit/steering"
)

// CheckSteeringJSON reads a bundle's steering.json (docs/export.md) and
// checks it as a reader of the schema would: a known version, a model with
// blocks and a hidden size, steered layers inside the model, a finite
// alpha, a known mode and vector file, a tensor named for every layer and
// non-negative token ids. Each error names the field at fault. Export
// checks what it writes with it.
func CheckSteeringJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var st steeringFile
	if err := dec.Decode(&st); err != nil {
		return fmt.Errorf("steering.json: %w", err)
	}
	return st.check()
}

func (st *steeringFile) check() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("steering.json: "+format, args...))
	}
	switch {
	case st.Version == 0:
		bad("version is missing: not a genkit steering.json")
	case st.Version < 0 || st.Version > BundleVersion:
		bad("version %d: this genkit reads versions 1 to %d", st.Version, BundleVersion)
	}
	if st.Model.Blocks <= 0 {
		bad("model.blocks must be > 0 (got %d)", st.Model.Blocks)
	}
	if st.Model.HiddenSize <= 0 {
		bad("model.hidden_size must be > 0 (got %d)", st.Model.HiddenSize)
	}
	s := st.Steering
	if _, err := steering.ParseMode(s.Mode); err != nil || s.Mode == "" {
		bad("steering.mode %q: want residual or logit-bias", s.Mode)
	}
	if err := steering.CheckAlpha(s.Alpha); err != nil {
		bad("steering.alpha: %v", err)
	}
	if len(s.Layers) == 0 {
		bad("steering.layers is empty")
	}
	for i, l := range s.Layers {
		if l < 0 || l >= st.Model.Blocks {
			bad("steering.layers[%d] = %d is outside the model's %d blocks", i, l, st.Model.Blocks)
		}
		if _, ok := s.Tensors[strconv.Itoa(l)]; !ok {
			bad("steering.tensors has no tensor for layer %d", l)
		}
	}
	if s.VectorFile != fileVectorGGUF && s.VectorFile != fileVectorST {
		bad("steering.vector_file %q: want %s or %s", s.VectorFile, fileVectorGGUF, fileVectorST)
	}
	for _, x := range []float64{s.Schedule.From, s.Schedule.To} {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			bad("steering.schedule: strength %v is not finite", x)
		}
	}
	for i, id := range st.Prompt.TokenIDs {
		if id < 0 {
			bad("prompt.token_ids[%d] = %d is negative", i, id)
			break
		}
	}
	return errors.Join(errs...)
}

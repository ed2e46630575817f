package steering

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"

	"github.com/mlx-genkit/genkit/engine"
)

// rankZeroRead runs read, which reads files (a cached vector, a vector
// file), on rank 0 alone of a sharded model and gives every rank rank 0's
// result, the value or the error: the ranks' disks may differ (several
// hosts, another cache dir, a file written between two ranks' reads), and
// what was read decides whether every rank then computes (collectives), so
// the ranks must take the same path. On one device it is read. Every rank
// must call it at the same point; what is read must survive gob.
func rankZeroRead[T any](m *engine.Model, what string, read func() (T, error)) (T, error) {
	var zero T
	if m.Ranks() <= 1 {
		return read()
	}
	type reply struct {
		Value T
		Err   string
	}
	var payload []byte
	var readErr error
	if m.Rank() == 0 {
		var r reply
		r.Value, readErr = read()
		if readErr != nil {
			r = reply{Err: readErr.Error()}
		}
		var buf bytes.Buffer
		if err := gob.NewEncoder(&buf).Encode(&r); err != nil {
			readErr = fmt.Errorf("%s: sending it to the ranks: %w", what, err)
			buf.Reset()
			if err := gob.NewEncoder(&buf).Encode(&reply{Err: readErr.Error()}); err != nil {
				return zero, err // cannot happen: a reply of a string encodes
			}
		}
		payload = buf.Bytes()
	}
	got, err := m.RankZeroBytes(payload)
	if err != nil {
		return zero, fmt.Errorf("%s from rank 0: %w", what, err)
	}
	var r reply
	if err := gob.NewDecoder(bytes.NewReader(got)).Decode(&r); err != nil {
		return zero, fmt.Errorf("%s from rank 0: %w", what, err)
	}
	if r.Err != "" {
		if readErr != nil {
			return zero, readErr // rank 0 keeps its own error (errors.Is works there)
		}
		return zero, errors.New(r.Err)
	}
	// Every rank, rank 0 included, uses the value that came over the wire.
	return r.Value, nil
}

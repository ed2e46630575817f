package mlx

import (
	"errors"
	"math"
)

// ErrInvalidLogits is returned when a lane's logits are NaN or every token
// was removed (steering far too strong, typically). The engine's decode loops
// and the sampling package's choosers both return it, so errors.Is works
// whichever path chose.
var ErrInvalidLogits = errors.New("logits are NaN or every token was removed")

// MarkInvalid returns the chosen ids [B] as int32 with -1 for every lane
// whose scores [B, V] hold NaN or are all -inf (the convention of the
// engine's device choosers); the arrays it makes belong to s.
func MarkInvalid(s *Scope, scores, ids *Array) *Array {
	id := s.Track(AsType(ids, Int32))
	top := s.Track(Max(scores, false, -1))
	bad := s.Track(LogicalOr(s.Track(Any(s.Track(IsNaN(scores)), false, -1)),
		s.Track(Equal(top, s.Track(Scalar(math.Inf(-1), Float32))))))
	return s.Track(Where(bad, s.Track(Scalar(-1, Int32)), id))
}

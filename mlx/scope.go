package mlx

// Scope collects the arrays made while building a computation and the first
// error met, so a chain of ops reads straight:
//
//	s := mlx.NewScope()
//	defer s.Close()
//	h := s.Track(mlx.Matmul(x, w))
//	y := s.Track(mlx.Add(h, b))
//	if err := s.Err(); err != nil { ... }
//	s.Keep(y) // y outlives the scope
//
// After an error every later op receives a nil input and fails fast, so only
// the first error is reported.
type Scope struct {
	arrays []*Array
	err    error
}

// NewScope makes an empty scope.
func NewScope() *Scope { return &Scope{} }

// Track records the result of an op: the array is freed by Close unless kept;
// an error is remembered (the first one wins) and nil is returned.
func (s *Scope) Track(a *Array, err error) *Array {
	if err != nil {
		if s.err == nil {
			s.err = err
		}
		return nil
	}
	s.arrays = append(s.arrays, a)
	return a
}

// Err is the first error recorded.
func (s *Scope) Err() error { return s.err }

// Fail records err as the scope's error unless one is already recorded.
func (s *Scope) Fail(err error) {
	if s.err == nil {
		s.err = err
	}
}

// Keep removes arrays from the scope so Close leaves them alive.
func (s *Scope) Keep(arrays ...*Array) {
	for _, k := range arrays {
		for i := len(s.arrays) - 1; i >= 0; i-- {
			if s.arrays[i] == k {
				s.arrays = append(s.arrays[:i], s.arrays[i+1:]...)
				break
			}
		}
	}
}

// Close frees every tracked array not kept.
func (s *Scope) Close() {
	for _, a := range s.arrays {
		a.Free()
	}
	s.arrays = nil
}

package engine

// SetMoESortMin sets how many token-expert pairs make sparseMLP group rows
// by expert (see moeSortMin), so tests can run both paths; it returns a
// function restoring the previous value.
func SetMoESortMin(n int) (restore func()) {
	old := moeSortMin
	moeSortMin = n
	return func() { moeSortMin = old }
}

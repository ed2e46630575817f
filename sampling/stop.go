package sampling

import (
	"strings"
	"time"
)

// Decoder turns token ids into text (the engine's tokenizer).
type Decoder interface {
	Decode(ids []int, skipSpecial bool) string
}

// StopStrings returns a stop test for engine.Request.Stop: a lane stops when
// one of the strings appears in its generated text ending inside the last
// token (so strings spanning token boundaries are found, and a last token
// that runs past the string still stops). nil when there are none.
func StopStrings(dec Decoder, stops []string) func(lane int, generated []int) bool {
	if len(stops) == 0 || dec == nil {
		return nil
	}
	return func(_ int, generated []int) bool {
		if len(generated) == 0 {
			return false
		}
		full := dec.Decode(generated, false)
		prev := len(dec.Decode(generated[:len(generated)-1], false))
		for _, s := range stops {
			if s == "" {
				continue
			}
			start := max(0, prev-len(s)+1)
			if start < len(full) && strings.Contains(full[start:], s) {
				return true
			}
		}
		return false
	}
}

// Deadline is the end time for max_time, zero when unset.
func (c *GenerationConfig) Deadline(start time.Time) time.Time {
	if c.MaxTime == nil || *c.MaxTime <= 0 {
		return time.Time{}
	}
	return start.Add(time.Duration(*c.MaxTime * float64(time.Second)))
}

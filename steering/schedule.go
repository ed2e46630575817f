package steering

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Schedule turns the base strength alpha into the strength at generation
// step t (t = 0 while the prompt is processed, then 1, 2, ... for each new
// token's forward pass).
type Schedule struct {
	// Kind is constant, warmup, ramp or window.
	Kind string `json:"kind"`
	// Steps is the length of a warmup or ramp.
	Steps int `json:"steps,omitempty"`
	// From and To are a ramp's end points (absolute strengths).
	From float64 `json:"from,omitempty"`
	To   float64 `json:"to,omitempty"`
	// Start and End bound a window [Start, End) of steps.
	Start int `json:"start,omitempty"`
	End   int `json:"end,omitempty"`
}

// Constant is the schedule that always gives alpha.
var Constant = Schedule{Kind: "constant"}

// Alpha is the strength at step t.
func (s Schedule) Alpha(alpha float64, t int) float64 {
	switch s.Kind {
	case "", "constant":
		return alpha
	case "warmup":
		if s.Steps <= 0 || t+1 >= s.Steps {
			return alpha
		}
		return alpha * float64(t+1) / float64(s.Steps)
	case "ramp":
		if s.Steps <= 0 || t >= s.Steps {
			return s.To
		}
		return s.From + (s.To-s.From)*float64(t)/float64(s.Steps)
	case "window":
		if t >= s.Start && (s.End <= 0 || t < s.End) {
			return alpha
		}
		return 0
	}
	return alpha
}

// String writes the schedule as a SPEC that ParseSchedule reads.
func (s Schedule) String() string {
	switch s.Kind {
	case "warmup":
		return fmt.Sprintf("warmup:%d", s.Steps)
	case "ramp":
		return fmt.Sprintf("ramp:%g:%g:%d", s.From, s.To, s.Steps)
	case "window":
		return fmt.Sprintf("window:%d:%d", s.Start, s.End)
	}
	return "constant"
}

// ParseSchedule reads a SPEC: "constant", "warmup:N" (linear from alpha/N to
// alpha over N steps), "ramp:A0:A1:N" (from A0 to A1 over N steps) or
// "window:START:END" (alpha on steps [START, END), 0 elsewhere; END 0 means
// open-ended).
func ParseSchedule(spec string) (Schedule, error) {
	parts := strings.Split(strings.TrimSpace(spec), ":")
	bad := func(why string) (Schedule, error) {
		return Schedule{}, fmt.Errorf("schedule %q: %s (want constant, warmup:N, ramp:A0:A1:N or window:START:END)", spec, why)
	}
	num := func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }
	switch parts[0] {
	case "", "constant":
		if len(parts) > 1 {
			return bad("constant takes no parameters")
		}
		return Constant, nil
	case "warmup":
		if len(parts) != 2 {
			return bad("warmup takes N")
		}
		n, err := strconv.Atoi(parts[1])
		if err != nil || n <= 0 {
			return bad("N must be a positive integer")
		}
		return Schedule{Kind: "warmup", Steps: n}, nil
	case "ramp":
		if len(parts) != 4 {
			return bad("ramp takes A0:A1:N")
		}
		a0, err0 := num(parts[1])
		a1, err1 := num(parts[2])
		n, err2 := strconv.Atoi(parts[3])
		if err0 != nil || err1 != nil || err2 != nil || n <= 0 {
			return bad("A0 and A1 must be numbers and N a positive integer")
		}
		return Schedule{Kind: "ramp", From: a0, To: a1, Steps: n}, nil
	case "window":
		if len(parts) != 3 {
			return bad("window takes START:END")
		}
		a, err0 := strconv.Atoi(parts[1])
		b, err1 := strconv.Atoi(parts[2])
		if err0 != nil || err1 != nil || a < 0 || b < 0 || b != 0 && b <= a {
			return bad("START and END must be integers with 0 <= START < END (END 0: no end)")
		}
		return Schedule{Kind: "window", Start: a, End: b}, nil
	}
	return bad("unknown kind " + parts[0])
}

// UnmarshalJSON accepts the object form or a SPEC string.
func (s *Schedule) UnmarshalJSON(b []byte) error {
	var spec string
	if json.Unmarshal(b, &spec) == nil {
		v, err := ParseSchedule(spec)
		*s = v
		return err
	}
	type plain Schedule
	return json.Unmarshal(b, (*plain)(s))
}

package jsontext

import (
	"strings"
	"testing"
)

// TestCheckEscapes: lone high and low surrogate escapes are refused with
// their byte offset, and \u0000 when asked; surrogate pairs, escaped
// backslashes before "ud800", keys, raw non-ASCII text and invalid JSON
// (left to the decoder) pass.
func TestCheckEscapes(t *testing.T) {
	for _, c := range []struct {
		json string
		nul  bool
		want string
	}{
		{`{"a":"x\ud800"}`, false, `lone UTF-16 high surrogate (\ud800) at byte offset 7`},
		{`["\udc00"]`, false, `lone UTF-16 low surrogate (\udc00) at byte offset 2`},
		{`{"\ud83dx":1}`, false, `high surrogate (\ud83d) at byte offset 2`},
		{`["\ud800\u0041"]`, false, `followed by \u0041 instead of a low surrogate`},
		{`["\ud800\ud800"]`, false, `followed by \ud800 instead`},
		{`["a\u0000"]`, true, `NUL character (\u0000) at byte offset 3`},
		{`["a\u0000"]`, false, ``},
		{`["\ud83d\ude00", "\\ud800", "é\"\ud800"]`, false, `high surrogate (\ud800) at byte offset 33`},
		{`["\ud83d\ude00", "\\ud800", "é\"", 1e5, {"k": [true, null]}]`, false, ``},
		{`["\ud800`, false, ``},
		{`"\ud800\`, false, ``},
	} {
		err := CheckEscapes([]byte(c.json), c.nul)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: got %v, want %q", c.json, err, c.want)
		}
	}
}

package sessions_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/sessions"
)

// FuzzLoadFile: any session file is refused with an error naming the file
// or loads into a session whose steering and generation settings validate.
func FuzzLoadFile(f *testing.F) {
	good, err := json.Marshal(sample())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"version":1,"name":"old","steering":{"layer":-1,"alpha":2,"schedule":"warmup:8","mode":"residual","scope":"generated"}}`))
	f.Add([]byte(`{"version":2,"steering":{"alpha":1e300}}`))
	f.Add([]byte(`{"version":2,"messages":[{"role":"assistant","content":"x"}],"chat_kwargs":{"messages":1}}`))
	f.Add([]byte(`{"version":99}`))
	f.Add([]byte(`{"version":2,"prompt":"\xff\xfe","generation":{"top_p":2}}`))
	f.Add([]byte(strings.Repeat(`[`, 10000)))
	f.Add(good[:len(good)/2])
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "s.json")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := sessions.LoadFile(p)
		if err != nil {
			if !strings.Contains(err.Error(), p) && !strings.Contains(err.Error(), "session") {
				t.Fatalf("error does not name the session: %v", err)
			}
			return
		}
		if err := s.Steering.Validate(); err != nil {
			t.Fatalf("loaded session has invalid steering: %v", err)
		}
		if err := s.Generation.Validate(); err != nil {
			t.Fatalf("loaded session has invalid generation settings: %v", err)
		}
	})
}

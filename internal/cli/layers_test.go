package cli

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// forbidden are the packages front ends must not import: the MLX thread is
// entered at the library's edges (engine, steering, quality), and text goes
// through engine.Model's prompt and decode methods.
var forbidden = []string{"github.com/mlx-genkit/genkit/mlx", "github.com/mlx-genkit/genkit/engine/tokenizer"}

// frontEndImports returns "file: path" for each forbidden import in the
// non-test Go files of dir.
func frontEndImports(t *testing.T, dir string, src map[string]string) []string {
	t.Helper()
	fset := token.NewFileSet()
	files := src
	if files == nil {
		files = map[string]string{}
		matches, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range matches {
			if !strings.HasSuffix(m, "_test.go") {
				files[m] = ""
			}
		}
	}
	var bad []string
	for name, body := range files {
		var content any
		if body != "" {
			content = body
		}
		f, err := parser.ParseFile(fset, name, content, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, fb := range forbidden {
				if p == fb {
					bad = append(bad, filepath.Base(name)+": "+p)
				}
			}
		}
	}
	return bad
}

// TestFrontEndsStayOffMLX: tui and internal/cli import neither mlx nor the
// tokenizer package; the check itself rejects a file that does.
func TestFrontEndsStayOffMLX(t *testing.T) {
	for _, dir := range []string{".", filepath.Join("..", "..", "tui")} {
		if bad := frontEndImports(t, dir, nil); len(bad) > 0 {
			t.Errorf("%s imports what a front end must not: %v", dir, bad)
		}
	}
	reject := map[string]string{"x.go": "package x\nimport (\n\t\"fmt\"\n\t\"github.com/mlx-genkit/genkit/mlx\"\n)\n"}
	if bad := frontEndImports(t, "", reject); len(bad) != 1 {
		t.Fatalf("the check missed an mlx import: %v", bad)
	}
	accept := map[string]string{"y.go": "package y\nimport \"github.com/mlx-genkit/genkit/engine\"\n"}
	if bad := frontEndImports(t, "", accept); len(bad) != 0 {
		t.Fatalf("the check rejected engine: %v", bad)
	}
}

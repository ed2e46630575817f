package engine_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
)

// fakeHub serves one repository (tiny-org/tiny, commit sha) from a local
// port the way the hub API does; files named in fail answer 500.
func fakeHub(t *testing.T, sha string, files map[string]string, failInfo bool, fail ...string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/models/tiny-org/tiny/revision/main" {
			if failInfo {
				http.Error(w, "boom", http.StatusInternalServerError)
				return
			}
			var sib []string
			for name := range files {
				sib = append(sib, fmt.Sprintf(`{"rfilename": %q}`, name))
			}
			fmt.Fprintf(w, `{"id": "tiny-org/tiny", "sha": %q, "siblings": [%s]}`, sha, strings.Join(sib, ","))
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, "/tiny-org/tiny/resolve/"+sha+"/")
		body, known := files[name]
		if !ok || !known {
			http.NotFound(w, r)
			return
		}
		for _, f := range fail {
			if f == name && r.Method == http.MethodGet {
				http.Error(w, "boom", http.StatusInternalServerError)
				return
			}
		}
		w.Header().Set("ETag", `"etag-`+name+`"`)
		w.Header().Set("X-Repo-Commit", sha)
		if r.Method == http.MethodGet {
			fmt.Fprint(w, body)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// strays lists the files under root that huggingface_hub's layout has no
// place for: lock files, partial downloads and the library's info folder.
func strays(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, ".lock") || strings.HasSuffix(p, ".downloading") || d.Name() == "info" {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestDownloadLeavesNoLocks: failed downloads (the listing, then one file)
// leave no lock file in the hub cache; a successful one leaves the layout
// huggingface_hub reads (refs/main naming the snapshot), so the model is
// then found offline.
func TestDownloadLeavesNoLocks(t *testing.T) {
	const sha = "0123456789abcdef0123456789abcdef01234567"
	cfg, err := os.ReadFile(filepath.Join(hfDir("llama_tied"), "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"config.json": string(cfg), "tokenizer_config.json": "{}"}
	quiet := func(string, int64, int64) {}
	for _, c := range []struct {
		name     string
		failInfo bool
		fail     []string
	}{{"listing fails", true, nil}, {"a file fails", false, []string{"tokenizer_config.json"}}} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			t.Setenv("HF_HUB_CACHE", root)
			t.Setenv("HF_ENDPOINT", fakeHub(t, sha, files, c.failInfo, c.fail...).URL)
			if _, err := engine.Download("tiny-org/tiny", "main", quiet); err == nil {
				t.Fatal("the download did not fail")
			}
			if s := strays(t, root); len(s) > 0 {
				t.Fatalf("stray files after a failed download: %v", s)
			}
		})
	}
	root := t.TempDir()
	t.Setenv("HF_HUB_CACHE", root)
	t.Setenv("HF_ENDPOINT", fakeHub(t, sha, files, false).URL)
	p, err := engine.Download("tiny-org/tiny", "main", quiet)
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(root, "models--tiny-org--tiny")
	if want := filepath.Join(repo, "snapshots", sha); p != want {
		t.Fatalf("snapshot %s, want %s", p, want)
	}
	if ref, err := os.ReadFile(filepath.Join(repo, "refs", "main")); err != nil || string(ref) != sha {
		t.Fatalf("refs/main: %q, %v", ref, err)
	}
	if s := strays(t, root); len(s) > 0 {
		t.Fatalf("stray files after a download: %v", s)
	}
	t.Setenv("HF_ENDPOINT", "http://127.0.0.1:1") // nothing listens: the cache must answer
	t.Setenv("TRANSFORMERS_OFFLINE", "1")
	if got, err := engine.ResolveModel("tiny-org/tiny", nil); err != nil || got != p {
		t.Fatalf("offline lookup: %q, %v", got, err)
	}
}

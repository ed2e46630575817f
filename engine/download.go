package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gofrs/flock"
	"github.com/gomlx/go-huggingface/hub"
	"github.com/mlx-genkit/genkit/internal/atomicfile"
)

// wantedFile says whether a repository file is needed to run the model.
func wantedFile(name string) bool {
	base := filepath.Base(name)
	switch base {
	case "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
		"special_tokens_map.json", "model.safetensors.index.json", "chat_template.jinja":
		return true
	}
	return strings.HasSuffix(base, ".safetensors") && !strings.Contains(name, "/")
}

// repoCacheDir is a model repository's folder in the hub cache
// (models--ORG--NAME, as huggingface_hub names it).
func repoCacheDir(cache, id string) string {
	return filepath.Join(cache, "models--"+strings.ReplaceAll(id, "/", "--"))
}

// Download fetches a hub model into the Hugging Face cache (the layout the
// Python library uses, so both share files: blobs, snapshots/COMMIT and
// refs/REVISION) and returns its snapshot directory, or the .gguf file of a
// GGUF-only repository. progress may be nil (a progress bar is printed to
// the terminal then). Whether it succeeds or fails it leaves no lock files
// behind (cleanCache).
func Download(id, revision string, progress func(file string, done, total int64)) (path string, err error) {
	cache, err := HubCacheDir()
	if err != nil {
		return "", err
	}
	defer cleanCache(repoCacheDir(cache, id))
	repo := hub.New(id).WithCacheDir(cache).WithRevision(revision).WithProgressBar(progress == nil)
	if tok := os.Getenv("HF_TOKEN"); tok != "" {
		repo = repo.WithAuth(tok)
	}
	if ep := os.Getenv("HF_ENDPOINT"); ep != "" {
		repo = repo.WithEndpoint(ep)
	}
	var files, ggufs []string
	for name, err := range repo.IterFileNames() {
		if err != nil {
			return "", fmt.Errorf("model %s: list files: %w", id, err)
		}
		if wantedFile(name) {
			files = append(files, name)
		}
		if strings.HasSuffix(name, ".gguf") {
			ggufs = append(ggufs, name)
		}
	}
	hasConfig := false
	for _, f := range files {
		hasConfig = hasConfig || f == "config.json"
	}
	if !hasConfig {
		switch len(ggufs) {
		case 0:
			return "", fmt.Errorf("model %s: the repository has neither config.json nor a .gguf file", id)
		case 1:
			files = []string{ggufs[0]}
		default:
			return "", fmt.Errorf("model %s holds several GGUF files (%s): download one and pass its path", id, strings.Join(ggufs, ", "))
		}
	}
	for _, f := range files {
		if progress != nil {
			progress(f, 0, 0)
		}
	}
	paths, err := repo.DownloadFiles(files...)
	if err != nil {
		return "", fmt.Errorf("model %s: download: %w", id, err)
	}
	if info := repo.Info(); info != nil && info.CommitHash != "" && info.CommitHash != revision {
		if err := writeRef(repoCacheDir(cache, id), revision, info.CommitHash); err != nil {
			return "", fmt.Errorf("model %s: %w", id, err)
		}
	}
	if !hasConfig {
		return paths[0], nil
	}
	return filepath.Dir(paths[0]), nil
}

// writeRef records that revision (a branch or tag) points at commit, in
// refs/REVISION as huggingface_hub does, so the snapshot is found offline.
func writeRef(repoDir, revision, commit string) error {
	p := filepath.Join(repoDir, "refs", filepath.FromSlash(revision))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return atomicfile.Write(p, []byte(commit), 0o644)
}

// cleanCache removes what the download library leaves in a repository's
// cache folder besides huggingface_hub's layout: every *.lock file no
// process holds (it keeps one beside each file after a failed download)
// and its info/ folder (repository listings it fetches again each run).
func cleanCache(repoDir string) {
	_ = filepath.WalkDir(repoDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".lock") {
			return nil
		}
		l := flock.New(p)
		if ok, err := l.TryLock(); err == nil && ok {
			os.Remove(p)
			l.Unlock()
		}
		return nil
	})
	os.RemoveAll(filepath.Join(repoDir, "info"))
}

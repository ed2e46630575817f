package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// DefaultModelFile is the file name of the default model in the model cache.
const DefaultModelFile = "SmolLM2-135M-Instruct.Q4_1.gguf"

// CacheDir is genkit's cache: $GENKIT_CACHE_DIR, else
// $XDG_CACHE_HOME/mlx-genkit, else ~/.cache/mlx-genkit.
func CacheDir() (string, error) {
	if d := os.Getenv("GENKIT_CACHE_DIR"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "mlx-genkit"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cache dir: %w", err)
	}
	return filepath.Join(home, ".cache", "mlx-genkit"), nil
}

// DataDir is where genkit keeps what users make (sessions, calibrations):
// $GENKIT_DATA_DIR, else $XDG_DATA_HOME/mlx-genkit, else
// ~/.local/share/mlx-genkit.
func DataDir() (string, error) {
	if d := os.Getenv("GENKIT_DATA_DIR"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "mlx-genkit"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("data dir: %w", err)
	}
	return filepath.Join(home, ".local", "share", "mlx-genkit"), nil
}

// DefaultModelPath is where `make deps` puts the default model.
func DefaultModelPath() (string, error) {
	if p := os.Getenv("GENKIT_DEFAULT_MODEL"); p != "" {
		return p, nil
	}
	d, err := CacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "models", DefaultModelFile), nil
}

var hubID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// IsHubID reports whether s looks like a Hugging Face repository id
// (org/name) rather than a path.
func IsHubID(s string) bool {
	if _, err := os.Stat(s); err == nil {
		return false
	}
	return hubID.MatchString(s) && !strings.HasPrefix(s, ".")
}

// ErrNotCached is returned when a hub id is not in the local cache.
var ErrNotCached = errors.New("not in the local Hugging Face cache")

// CachedSnapshot finds the snapshot directory of a hub id in the local cache
// (revision "" means refs/main).
func CachedSnapshot(id, revision string) (string, error) {
	root, err := HubCacheDir()
	if err != nil {
		return "", err
	}
	repo := filepath.Join(root, "models--"+strings.ReplaceAll(id, "/", "--"))
	if revision == "" {
		revision = "main"
	}
	rev := revision
	if b, err := os.ReadFile(filepath.Join(repo, "refs", revision)); err == nil {
		rev = strings.TrimSpace(string(b))
	}
	snap := filepath.Join(repo, "snapshots", rev)
	if _, err := os.Stat(filepath.Join(snap, "config.json")); err != nil {
		// A GGUF-only repository has no config.json: accept one .gguf file.
		if g, _ := filepath.Glob(filepath.Join(snap, "*.gguf")); len(g) == 1 {
			return g[0], nil
		}
		return "", fmt.Errorf("model %s: %w (looked in %s)", id, ErrNotCached, repo)
	}
	return snap, nil
}

// ResolveModel turns what a user typed (empty for the default model, a path,
// or a hub id) into a local path, downloading a hub id unless offline
// (HubOffline).
func ResolveModel(spec string, progress func(file string, done, total int64)) (string, error) {
	if spec == "" {
		p, err := DefaultModelPath()
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("default model %s is missing: run `make deps` (or pass --model)", p)
		}
		return p, nil
	}
	if _, err := os.Stat(spec); err == nil {
		return spec, nil
	}
	if !IsHubID(spec) {
		return "", fmt.Errorf("model %s: no such file or directory", spec)
	}
	if p, err := CachedSnapshot(spec, ""); err == nil {
		return p, nil
	}
	if HubOffline() {
		root, _ := HubCacheDir()
		return "", fmt.Errorf("model %s is not in the local Hugging Face cache (%s) and offline mode is on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE)", spec, root)
	}
	return Download(spec, "main", progress)
}

package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/go-huggingface/hub"
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

// Download fetches a hub model into the Hugging Face cache (the layout the
// Python library uses, so both share files) and returns its snapshot
// directory, or the .gguf file of a GGUF-only repository. progress may be nil
// (a progress bar is printed to the terminal then).
func Download(id, revision string, progress func(file string, done, total int64)) (string, error) {
	cache, err := HubCacheDir()
	if err != nil {
		return "", err
	}
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
	if !hasConfig {
		return paths[0], nil
	}
	return filepath.Dir(paths[0]), nil
}

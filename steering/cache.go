package steering

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/internal/atomicfile"
	"github.com/mlx-genkit/genkit/mlx"
)

// Fingerprint identifies a model's weights cheaply: its config and, for
// each weight file, the size and the first and last MiB.
func Fingerprint(m *engine.Model) (string, error) {
	h := sha256.New()
	cfg, _ := json.Marshal(m.Config)
	h.Write(cfg)
	files := []string{m.Source}
	if st, err := os.Stat(m.Source); err == nil && st.IsDir() {
		files, _ = filepath.Glob(filepath.Join(m.Source, "*.safetensors"))
	}
	for _, f := range files {
		if err := hashEnds(h, f); err != nil {
			return "", fmt.Errorf("fingerprint: %w", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func hashEnds(h io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	fmt.Fprintf(h, "%s:%d;", filepath.Base(path), st.Size())
	const chunk = 1 << 20
	if _, err := io.CopyN(h, f, min(chunk, st.Size())); err != nil {
		return err
	}
	if st.Size() > chunk {
		if _, err := f.Seek(-chunk, io.SeekEnd); err != nil {
			return err
		}
		if _, err := io.CopyN(h, f, chunk); err != nil {
			return err
		}
	}
	return nil
}

// PresetVectors returns the preset's per-layer vectors for m, computing them
// on first use and caching them under the genkit cache dir, keyed by model
// fingerprint, preset and method. On a sharded model rank 0 alone reads
// and writes the cache: a hit is sent to every rank, a miss makes every
// rank compute.
func PresetVectors(ctx context.Context, m *engine.Model, p *Preset, method Method, progress func(done, total int)) (*Extraction, error) {
	fp, err := Fingerprint(m)
	if err != nil {
		return nil, err
	}
	dir, err := engine.CacheDir()
	if err != nil {
		return nil, err
	}
	base := filepath.Join(dir, "vectors", fp, fmt.Sprintf("%s-%s", p.Name, method))
	// On a sharded model rank 0 reads the cache for every rank: a hit
	// anywhere else would skip collectives rank 0 enters.
	if ex, err := rankZeroRead(m, "the cached "+p.Name+" vector", func() (*Extraction, error) { return loadCached(base) }); err == nil {
		return ex, nil
	}
	pairs, err := p.Pairs(m)
	if err != nil {
		return nil, err
	}
	ex, err := Extract(ctx, m, pairs, ExtractOptions{Method: method, Progress: progress})
	if err != nil {
		return nil, err
	}
	if m.Rank() != 0 {
		return ex, nil
	}
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		return ex, nil // caching is best effort
	}
	_ = saveCached(base, ex, m.Config.Architecture)
	return ex, nil
}

func loadCached(base string) (*Extraction, error) {
	data, err := os.ReadFile(base + ".json")
	if err != nil {
		return nil, err
	}
	var sep map[int]float64
	if err := json.Unmarshal(data, &sep); err != nil {
		return nil, err
	}
	var vs *VectorSet
	err = mlx.Do(context.Background(), func() error {
		var err error
		vs, err = LoadVectors(base+".safetensors", 0)
		return err
	})

	if err != nil {
		return nil, err
	}
	return &Extraction{Vectors: vs.Vectors, Separation: sep}, nil
}

func saveCached(base string, ex *Extraction, hint string) error {
	err := mlx.Do(context.Background(), func() error {
		// .safetensors keeps block 0, which a llama.cpp .gguf cannot hold.
		return (&VectorSet{Vectors: ex.Vectors, ModelHint: hint}).Save(base + ".safetensors")
	})

	if err != nil {
		return err
	}
	data, err := json.Marshal(ex.Separation)
	if err != nil {
		return err
	}
	return atomicfile.Write(base+".json", data, 0o644)
}

package steering

import (
	"embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/internal/atomicfile"
)

// Calibration is the strongest setting of a preset, in one steering mode,
// for one model, that kept its text sound when it was measured (see
// `genkit vector calibrate`).
type Calibration struct {
	Preset string  `json:"preset"`
	Mode   string  `json:"mode"`  // residual or logit-bias
	Model  string  `json:"model"` // Fingerprint of the model
	Alpha  float64 `json:"alpha"`
	Layer  int     `json:"layer"` // block index, 0-based
	// Bound is the fluency bound the setting was chosen under (steered
	// perplexity over base perplexity, geometric mean over lines).
	Bound float64 `json:"bound"`
	// Found is false when no setting of the sweep met every criterion;
	// Alpha and Layer are then the preset's own and Why says what failed.
	Found    bool               `json:"found"`
	Why      string             `json:"why,omitempty"`
	Lines    int                `json:"lines"`
	Measured map[string]float64 `json:"measured,omitempty"`
	Date     time.Time          `json:"date"`
}

// calibrationFile is the on-disk store: one entry per preset, mode and
// model.
type calibrationFile struct {
	Version int           `json:"version"`
	Entries []Calibration `json:"entries"`
}

//go:embed calibration/*.json
var shippedCalibration embed.FS

// CalibrationPath is the user's calibration store: calibration.json in
// engine.DataDir.
func CalibrationPath() (string, error) {
	d, err := engine.DataDir()
	if err != nil {
		return "", fmt.Errorf("calibration: %w", err)
	}
	return filepath.Join(d, "calibration.json"), nil
}

func readCalibration(data []byte, what string) ([]Calibration, error) {
	var f calibrationFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("%s: version %d (this genkit reads version 1)", what, f.Version)
	}
	return f.Entries, nil
}

// LookupCalibration finds the calibration of preset in mode for the model
// with fingerprint model: the user's store first, then the calibrations
// shipped for the default model. ok is false when there is none.
func LookupCalibration(preset, mode, model string) (Calibration, bool, error) {
	var sources [][]Calibration
	if p, err := CalibrationPath(); err == nil {
		if data, err := os.ReadFile(p); err == nil {
			e, err := readCalibration(data, p)
			if err != nil {
				return Calibration{}, false, err
			}
			sources = append(sources, e)
		}
	}
	shipped, err := ShippedCalibrations()
	if err != nil {
		return Calibration{}, false, err
	}
	sources = append(sources, shipped)
	for _, entries := range sources {
		for _, c := range entries {
			if c.Preset == preset && c.Mode == mode && c.Model == model {
				return c, true, nil
			}
		}
	}
	return Calibration{}, false, nil
}

// ShippedCalibrations are the calibrations that come with genkit (measured
// on the default model).
func ShippedCalibrations() ([]Calibration, error) {
	var out []Calibration
	files, err := shippedCalibration.ReadDir("calibration")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		data, err := shippedCalibration.ReadFile("calibration/" + f.Name())
		if err != nil {
			return nil, err
		}
		e, err := readCalibration(data, "shipped "+f.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, e...)
	}
	return out, nil
}

// SaveCalibration records c in the user's store, replacing the entry for
// the same preset, mode and model; other entries are kept. The store is
// written atomically.
func SaveCalibration(c Calibration) (string, error) {
	p, err := CalibrationPath()
	if err != nil {
		return "", err
	}
	var entries []Calibration
	if data, err := os.ReadFile(p); err == nil {
		if entries, err = readCalibration(data, p); err != nil {
			return "", fmt.Errorf("%w (move the file aside to start a new store)", err)
		}
	}
	kept := entries[:0]
	for _, e := range entries {
		if e.Preset != c.Preset || e.Mode != c.Mode || e.Model != c.Model {
			kept = append(kept, e)
		}
	}
	kept = append(kept, c)
	sort.Slice(kept, func(i, j int) bool {
		a, b := kept[i], kept[j]
		if a.Model != b.Model {
			return a.Model < b.Model
		}
		if a.Preset != b.Preset {
			return a.Preset < b.Preset
		}
		return a.Mode < b.Mode
	})
	data, err := json.MarshalIndent(calibrationFile{Version: 1, Entries: kept}, "", "  ")
	if err != nil {
		return "", err
	}
	return p, atomicfile.Write(p, append(data, '\n'), 0o644)
}

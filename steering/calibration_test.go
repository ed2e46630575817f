package steering_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mlx-genkit/genkit/steering"
)

// TestCalibrationStore: a stored calibration is found for its preset, mode
// and model only; storing again replaces it and keeps the others; a store
// of another version is refused by name, not overwritten.
func TestCalibrationStore(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GENKIT_DATA_DIR", dir)
	if _, ok, err := steering.LookupCalibration("pirate", "residual", "fp-a"); err != nil || ok {
		t.Fatalf("empty store: ok %v, err %v", ok, err)
	}
	save := func(c steering.Calibration) {
		if _, err := steering.SaveCalibration(c); err != nil {
			t.Fatal(err)
		}
	}
	save(steering.Calibration{Preset: "pirate", Mode: "residual", Model: "fp-a", Alpha: 2, Layer: 15, Found: true})
	save(steering.Calibration{Preset: "pirate", Mode: "logit-bias", Model: "fp-a", Alpha: 0.2, Layer: 15, Found: true})
	save(steering.Calibration{Preset: "pirate", Mode: "residual", Model: "fp-a", Alpha: 3, Layer: 13, Found: true})
	c, ok, err := steering.LookupCalibration("pirate", "residual", "fp-a")
	if err != nil || !ok || c.Alpha != 3 || c.Layer != 13 {
		t.Fatalf("replaced entry: %+v %v %v", c, ok, err)
	}
	if c, ok, _ := steering.LookupCalibration("pirate", "logit-bias", "fp-a"); !ok || c.Alpha != 0.2 {
		t.Errorf("other mode lost: %+v %v", c, ok)
	}
	if _, ok, _ := steering.LookupCalibration("pirate", "residual", "fp-b"); ok {
		t.Error("found for another model")
	}
	p := filepath.Join(dir, "calibration.json")
	os.WriteFile(p, []byte(`{"version": 2, "entries": []}`), 0o644)
	if _, _, err := steering.LookupCalibration("pirate", "residual", "fp-a"); err == nil {
		t.Error("a version-2 store was read")
	}
	if _, err := steering.SaveCalibration(steering.Calibration{Preset: "x"}); err == nil {
		t.Error("a version-2 store was overwritten")
	}
}

// TestShippedCalibrationsParse: the calibrations shipped for the default
// model are version 1 and name shipped presets in a known mode.
func TestShippedCalibrationsParse(t *testing.T) {
	t.Setenv("GENKIT_DATA_DIR", t.TempDir())
	all, err := steering.ShippedCalibrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range all {
		if _, err := steering.PresetByName(c.Preset); err != nil {
			t.Errorf("shipped calibration for %q: %v", c.Preset, err)
		}
		if c.Mode != "residual" && c.Mode != "logit-bias" {
			t.Errorf("shipped calibration mode %q", c.Mode)
		}
	}
}

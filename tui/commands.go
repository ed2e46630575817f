package tui

// The UI's commands: everything that reads or writes files or runs MLX
// (loading, saving, exporting, calibration look-ups, memory statistics,
// making a vector) runs here, off the event loop, and reports back by a
// message; Update only starts them. (The session picker's commands are in
// picker.go; runs go through the Runner.)

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/sessions"
	"github.com/mlx-genkit/genkit/steering"
)

// loaded reads what the UI needs about a loaded model (the presets, the
// device, the model's do_sample); it runs in the loading command.
func loaded(m *engine.Model, err error) modelLoadedMsg {
	if err != nil {
		return modelLoadedMsg{err: err}
	}
	msg := modelLoadedMsg{m: m}
	if ps, err := steering.Presets(); err == nil {
		for _, p := range ps {
			msg.presets = append(msg.presets, p.Name)
		}
	}
	if d, err := engine.Device(context.Background()); err == nil {
		msg.device = d.Device.String()
	}
	if g, err := steering.Generation(m); err == nil {
		msg.modelSamples = g.Sampling()
	}
	return msg
}

func (md *Model) save() error { return sessions.Save(md.session()) }

// saveCmd saves a copy of the current session in the background.
func (md *Model) saveCmd(what string) tea.Cmd {
	ss := md.session()
	return func() tea.Msg { return savedMsg{err: sessions.Save(ss), what: what} }
}

// exportedMsg reports an export (sessions.ExportBundle).
type exportedMsg struct {
	dir    string
	err    error
	exists bool // an earlier export is in the folder: ctrl+e again replaces it
}

// exportCmd writes the export bundle (sessions.ExportBundle, the one export
// the headless `genkit export` makes too) in the background from a copy of
// the current session, under the data dir. It never replaces an earlier
// export silently: without force it reports that one exists, and the next
// ctrl+e (force) replaces it.
func (md *Model) exportCmd(force bool) tea.Cmd {
	if md.m == nil {
		return nil
	}
	ss := md.session()
	m, ctx := md.m, md.ctx
	opts := sessions.BundleOptions{ModelID: modelID(md.opts.ModelSpec, md.m), Force: force, Resolve: md.opts.Leader.Resolve}
	return func() tea.Msg {
		b, err := sessions.ExportBundle(ctx, m, ss, "", opts)
		if errors.Is(err, sessions.ErrExportExists) {
			dir, _ := sessions.ExportDir(ss.Name)
			return exportedMsg{dir: dir, exists: true}
		}
		if err != nil {
			return exportedMsg{err: fmt.Errorf("export: %w", err)}
		}
		return exportedMsg{dir: b.Dir}
	}
}

// calibrationCmd looks up the stored calibration of the preset and mode
// for this model.
func (md *Model) calibrationCmd() tea.Cmd {
	if md.m == nil || md.settings.Steering.Preset == "" {
		md.status = "calibration applies to presets: choose one first"
		return nil
	}
	m, preset, mode := md.m, md.settings.Steering.Preset, string(md.settings.Steering.Mode)
	return func() tea.Msg {
		fp, err := steering.Fingerprint(m)
		if err != nil {
			return calibrationMsg{err: err}
		}
		c, ok, err := steering.LookupCalibration(preset, mode, fp)
		return calibrationMsg{c: c, ok: ok, err: err, preset: preset, mode: mode}
	}
}

func modelID(spec string, m *engine.Model) string {
	if spec != "" {
		return spec
	}
	if m != nil {
		return m.Source
	}
	return ""
}

func (md *Model) readMemory() tea.Msg {
	st, _ := engine.Memory(md.ctx)
	return memoryMsg{st}
}

// makeVector extracts a vector from the positive and negative editors in
// the background (progress in the status bar), saves it as a control
// vector under the cache dir and steers with it at its best layer.
func (md *Model) makeVector() tea.Cmd {
	if md.m == nil || md.making {
		return nil
	}
	pos, neg := md.editors.Pairs()
	m, send, id, ctx, lead := md.m, md.send, md.runID, md.ctx, md.opts.Leader
	md.making = true
	md.status = "making a vector from your texts…"
	return func() tea.Msg {
		pairs, err := steering.TextPairs(m, pos, neg)
		if err != nil {
			return vectorMadeMsg{err: err}
		}
		ex, err := lead.Extract(ctx, m, pairs, steering.ExtractOptions{Progress: func(done, total int) {
			if send != nil {
				send(ProgressMsg{RunID: id, What: "reading hidden states", Done: done, Total: total})
			}
		}})
		if err != nil {
			return vectorMadeMsg{err: err}
		}
		dir, err := engine.CacheDir()
		if err != nil {
			return vectorMadeMsg{err: err}
		}
		// .safetensors keeps every layer (a llama.cpp .gguf cannot hold block 0).
		path := filepath.Join(dir, "vectors", "custom", time.Now().Format("20060102-150405")+".safetensors")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return vectorMadeMsg{err: err}
		}
		err = (&steering.VectorSet{Vectors: ex.Vectors, ModelHint: m.Config.Architecture}).Save(path)
		return vectorMadeMsg{path: path, best: ex.BestLayer(), sep: ex.Separation, err: err}
	}
}

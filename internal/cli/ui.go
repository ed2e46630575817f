package cli

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/sessions"
	"github.com/mlx-genkit/genkit/steering"
	"github.com/mlx-genkit/genkit/tui"
	"github.com/spf13/cobra"
)

// uiFlags are the flags of genkit without a subcommand (the terminal UI).
type uiFlags struct {
	mf                   modelFlags
	prompt, session      string
	theme, preset, vec   string
	alpha                float64
	maxNew               int
	listSessions, noChat bool
}

func (f *uiFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	f.mf.register(fs)
	fs.StringVar(&f.prompt, "prompt", "", "start decoding this prompt at once")
	fs.StringVar(&f.session, "session", "", "open (or create) the named session; it autosaves under this name")
	fs.StringVar(&f.theme, "theme", "", "dark, light or high-contrast (default: from the terminal background)")
	fs.StringVar(&f.preset, "preset", "", "persona preset to steer with (default "+steering.DefaultPreset+")")
	fs.StringVar(&f.vec, "steer-vector", "", "steering vector file instead of a preset")
	fs.Float64Var(&f.alpha, "alpha", steering.DefaultAlpha, "steering strength (default: the preset's suggestion)")
	fs.IntVar(&f.maxNew, "max-new-tokens", steering.DefaultMaxNewTokens, "tokens per lane")
	fs.BoolVar(&f.noChat, "no-chat", false, "feed the prompt without the chat template")
	fs.BoolVar(&f.listSessions, "list-sessions", false, "list saved sessions and exit")
}

func (f *uiFlags) run(cmd *cobra.Command) error {
	if f.listSessions {
		list, err := sessions.List()
		if err != nil {
			return err
		}
		for _, s := range list {
			if s.Err != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "%-24s (unreadable: %v)\n", s.Name, s.Err)
				continue
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%-24s %s  %s\n", s.Name, s.Saved.Local().Format("2006-01-02 15:04"), s.Model)
		}
		return nil
	}
	if os.Getenv(engine.EnvDistBackend) != "" {
		// Each rank would open its own UI on the whole model.
		return fmt.Errorf("the terminal UI does not run under genkit launch yet (it would need rank 0 to send every request to the other ranks); run genkit generate, logits or bench there")
	}
	settings := tui.DefaultSettings()
	start := f.prompt != ""
	if f.session != "" {
		if err := sessions.CheckName(f.session); err != nil {
			return err
		}
		s, err := sessions.Load(f.session)
		switch {
		case err == nil:
			settings = tui.FromSession(s)
			if !cmd.Flags().Changed("model") && s.Model != "" {
				f.mf.model = s.Model
			}
			start = true
		case errors.Is(err, os.ErrNotExist):
			// A new session under this name.
		default:
			return err
		}
	}
	fl := cmd.Flags()
	if f.prompt != "" {
		settings.Prompt = f.prompt
	}
	if fl.Changed("preset") {
		settings.Steering.Preset, settings.Steering.Vector = f.preset, ""
	}
	if fl.Changed("steer-vector") {
		settings.Steering.Vector, settings.Steering.Preset = f.vec, ""
	}
	if fl.Changed("alpha") {
		if math.IsNaN(f.alpha) || math.IsInf(f.alpha, 0) {
			return fmt.Errorf("--alpha %v: not a finite number", f.alpha)
		}
		a := f.alpha
		settings.Steering.Alpha = &a
	}
	if err := settings.Steering.Validate(); err != nil {
		return flagError(err)
	}
	if fl.Changed("max-new-tokens") {
		settings.Gen.MaxNewTokens = sampling.Ptr(f.maxNew)
	}
	if f.noChat {
		settings.Chat = false
	}
	loadOpts, err := f.mf.options()
	if err != nil {
		return err
	}
	spec := f.mf.model
	load := func() (*engine.Model, error) { return engine.Open(context.Background(), spec, loadOpts, nil) }
	md := tui.New(tui.Options{ModelSpec: spec, SessionName: f.session, Settings: settings, StartNow: start, Theme: f.theme, Load: load, Notice: engine.CompileNotice()})
	p := tea.NewProgram(md)
	md.SetSend(p.Send)
	// A signal (SIGINT, SIGTERM, SIGHUP; Main cancels the context) quits the
	// UI the way q does: the run is cancelled and the session saved. If the
	// UI has not exited a second later, the program is killed (the terminal
	// is restored either way).
	exited := make(chan struct{})
	go func() {
		select {
		case <-cmd.Context().Done():
			p.Send(tui.SignalMsg{})
			select {
			case <-exited:
			case <-time.After(time.Second):
				p.Kill()
			}
		case <-exited:
		}
	}()
	_, err = p.Run()
	close(exited)
	// The terminal is already restored and no event loop is running: cancel
	// the run and save (no MLX work), then exit without waiting for the
	// cancelled step. A step still running is cut short by the exit, which
	// is safe: Go's exit runs no C++ destructors under the MLX thread, and
	// nothing is being written.
	md.WaitRunner(0)
	if serr := md.SaveOnExit(); serr != nil {
		fmt.Fprintln(os.Stderr, "genkit: saving the session on exit failed:", serr)
	}
	if err != nil && !errors.Is(err, tea.ErrProgramKilled) {
		return err
	}
	if code := md.ExitCode(); code != 0 {
		return exitCode(code)
	}
	return nil
}

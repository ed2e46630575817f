package cli

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
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
	// Under genkit launch, rank 0 runs the UI and the other ranks follow it
	// (followUI): every run, vector and export's resolve is a job rank 0
	// broadcasts and all ranks run together (steering.Leader).
	g, err := joinGroup()
	if err != nil {
		return err
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
	loadOpts.Group = g
	spec := f.mf.model
	if g.Rank() > 0 {
		return followUI(cmd.Context(), g, spec, loadOpts)
	}
	lead := steering.NewLeader(g)
	load := func() (*engine.Model, error) { return engine.Open(context.Background(), spec, loadOpts, nil) }
	md := tui.New(tui.Options{ModelSpec: spec, SessionName: f.session, Settings: settings, StartNow: start, Theme: f.theme, Load: load,
		Notice: engine.CompileNotice(), Leader: lead})
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
	// Under genkit launch the other ranks return once the cancelled job
	// has stopped on every rank (at its next check point).
	if qerr := lead.Quit(quitWait); qerr != nil {
		fmt.Fprintln(os.Stderr, "genkit:", qerr)
	}
	if err != nil && !errors.Is(err, tea.ErrProgramKilled) {
		return err
	}
	if code := md.ExitCode(); code != 0 {
		return exitCode(code)
	}
	return nil
}

// quitWait is how long the UI's exit waits, under genkit launch, for the
// cancelled job to stop so the other ranks can be told to quit (genkit
// launch stops them anyway once rank 0 has exited).
const quitWait = 3 * time.Second

// followUI is the terminal UI on a rank other than 0 under genkit launch:
// no terminal, its shard of the model, and rank 0's jobs until it quits.
// Nothing goes to the terminal, which rank 0's UI owns; a job that fails
// here (it fails on rank 0 too, where the UI shows it) is appended to
// followerLog, so a failure on this rank alone can be found.
func followUI(ctx context.Context, g *engine.DistGroup, spec string, opts engine.LoadOptions) error {
	m, err := engine.Open(ctx, spec, opts, nil)
	if err != nil {
		return err
	}
	logFailure := func(kind string, err error) {
		path, perr := followerLog(g.Rank())
		if perr != nil {
			return
		}
		f, ferr := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if ferr != nil {
			return
		}
		fmt.Fprintf(f, "%s rank %d: %s job: %v\n", time.Now().Format(time.RFC3339), g.Rank(), kind, err)
		f.Close()
	}
	// The model is not freed: the process exits next, and the MLX thread
	// may still wait on rank 0 when Follow returns on a signal.
	return steering.Follow(ctx, g, m, logFailure)
}

// followerLog is where a following rank of the UI records the jobs that
// failed on it: <data dir>/logs/follower-rank<N>.log.
func followerLog(rank int) (string, error) {
	dir, err := engine.DataDir()
	if err != nil {
		return "", err
	}
	dir = filepath.Join(dir, "logs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return filepath.Join(dir, fmt.Sprintf("follower-rank%d.log", rank)), nil
}

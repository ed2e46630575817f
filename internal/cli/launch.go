package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/spf13/cobra"
)

// launchSelf is the program genkit launch starts once per rank (tests point
// it at a test binary that behaves as genkit).
var launchSelf = os.Executable

// launchFlags are genkit launch's options.
type launchFlags struct {
	n           int
	backend     string
	initTimeout time.Duration
	grace       time.Duration
}

func newLaunchCmd() *cobra.Command {
	var f launchFlags
	cmd := &cobra.Command{
		Use:   "launch -n N [--backend ring|nccl] -- [genkit arguments]",
		Short: "Run genkit as N ranks of one tensor-parallel group on this host",
		Long: `launch starts N copies of genkit on this host, one per rank of an MLX
distributed group, with the environment MLX's backends read (MLX_RANK,
MLX_HOSTFILE for ring; MLX_WORLD_SIZE, NCCL_HOST_IP, NCCL_PORT and one GPU
per rank through CUDA_VISIBLE_DEVICES for nccl) plus GENKIT_DIST_BACKEND and
GENKIT_DIST_TIMEOUT. Rank 0 gets the terminal (stdin, stdout, stderr); the
other ranks' output goes to stderr, each line prefixed with "[rank R]".

A signal (SIGINT, SIGTERM, SIGHUP) is passed on to every rank and launch exits
128+N. When a rank fails, the others are stopped; the exit status is rank 0's
own status when rank 0 failed first, else 100+R for rank R (at most 125).
When rank 0 ends, the others are given --grace to end too, then stopped;
a rank failing after rank 0 ended well is reported but does not fail the run.
See docs/distributed.md.`,
		Example: "  genkit launch -n 2 -- generate --prompt 'Hello'\n  genkit launch -n 2 --backend nccl -- bench --synthetic ...",
		// The launcher itself runs no MLX work: no device selection.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("device") {
				dev, _ := cmd.Flags().GetString("device")
				args = append([]string{"--device", dev}, args...)
			}
			return runLaunch(cmd, f, args)
		},
	}
	cmd.Flags().IntVarP(&f.n, "np", "n", 2, "number of ranks (processes)")
	cmd.Flags().StringVar(&f.backend, "backend", "auto", "MLX distributed backend: ring (TCP, any machine), nccl (one NVIDIA GPU per rank) or auto (nccl when the linked MLX has it, else ring)")
	cmd.Flags().DurationVar(&f.initTimeout, "init-timeout", engine.DefaultDistTimeout, "how long each rank waits for the others to connect")
	cmd.Flags().DurationVar(&f.grace, "grace", 10*time.Second, "how long ranks get to end after rank 0 ends or one fails, before they are killed")
	return cmd
}

// rankEnv is the environment of one rank: the launcher's own, with the
// variables of set replaced (an empty value removes the variable).
func rankEnv(base []string, set map[string]string) []string {
	out := make([]string, 0, len(base)+len(set))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; !ok {
			out = append(out, kv)
		}
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	// Deterministic order for readable environments.
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	for _, k := range keys {
		if set[k] != "" {
			out = append(out, k+"="+set[k])
		}
	}
	return out
}

// launchPlan is every rank's extra environment for n ranks over backend,
// with the files it needs written under dir.
func launchPlan(n int, backend string, initTimeout time.Duration, dir string) ([]map[string]string, error) {
	if n < 1 {
		return nil, fmt.Errorf("-n %d: want at least 1 rank", n)
	}
	if initTimeout <= 0 {
		return nil, fmt.Errorf("--init-timeout %v: want a positive duration", initTimeout)
	}
	if n == 1 {
		// One rank is no group (MLX's ring cannot close a ring of one):
		// the copy runs alone, without inherited distributed variables.
		return []map[string]string{{engine.EnvDistRank: "", engine.EnvDistHostfile: "", engine.EnvDistWorld: "", engine.EnvDistBackend: ""}}, nil
	}
	if backend == "auto" {
		backend = engine.DistRing
		if ok, err := engine.DistributedAvailable(engine.DistNCCL); err == nil && ok {
			backend = engine.DistNCCL
		}
	}
	envs := make([]map[string]string, n)
	for r := range envs {
		envs[r] = map[string]string{
			engine.EnvDistRank:    strconv.Itoa(r),
			engine.EnvDistBackend: backend,
			engine.EnvDistTimeout: initTimeout.String(),
		}
	}
	switch backend {
	case engine.DistRing:
		host, err := engine.LoopbackRing(n)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, "hostfile.json")
		if err := os.WriteFile(path, host, 0o644); err != nil {
			return nil, fmt.Errorf("ring hostfile: %w", err)
		}
		for r := range envs {
			envs[r][engine.EnvDistHostfile] = path
		}
	case engine.DistNCCL:
		ok, err := engine.DistributedAvailable(engine.DistNCCL)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, errors.New("--backend nccl: the linked MLX library has no NCCL backend (it needs the CUDA build of MLX)")
		}
		p, err := engine.FreeLoopbackPort()
		if err != nil {
			return nil, err
		}
		port := strconv.Itoa(p)
		// One GPU per rank: the rank-th of the GPUs the user made visible,
		// else GPU number rank.
		gpus := []string{}
		if v, set := os.LookupEnv("CUDA_VISIBLE_DEVICES"); set && v != "" {
			gpus = strings.Split(v, ",")
			if len(gpus) < n {
				return nil, fmt.Errorf("--backend nccl: %d ranks but CUDA_VISIBLE_DEVICES=%q lists %d GPUs (NCCL needs one GPU per rank)", n, v, len(gpus))
			}
		}
		for r := range envs {
			e := envs[r]
			e[engine.EnvDistWorld] = strconv.Itoa(n)
			e[engine.EnvNCCLHostIP] = "127.0.0.1"
			e[engine.EnvNCCLPort] = port
			if len(gpus) > 0 {
				e["CUDA_VISIBLE_DEVICES"] = strings.TrimSpace(gpus[r])
			} else {
				e["CUDA_VISIBLE_DEVICES"] = strconv.Itoa(r)
			}
			// NVLink SHARP (NVLS) multicast is off unless asked for: it fails
			// on machines whose fabric manager does not grant it.
			if _, set := os.LookupEnv("NCCL_NVLS_ENABLE"); !set {
				e["NCCL_NVLS_ENABLE"] = "0"
			}
			if _, set := os.LookupEnv("NCCL_SOCKET_IFNAME"); !set {
				e["NCCL_SOCKET_IFNAME"] = "lo"
			}
		}
	default:
		return nil, fmt.Errorf("--backend %q: want ring, nccl or auto", backend)
	}
	return envs, nil
}

// prefixWriter writes each complete line to w as "[rank R] line", under mu
// (shared by the ranks so their lines do not interleave).
type prefixWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		p.mu.Lock()
		_, err := fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.mu.Unlock()
		p.buf = p.buf[i+1:]
		if err != nil {
			return len(b), err
		}
	}
}

// flush writes an unfinished last line.
func (p *prefixWriter) flush() {
	if len(p.buf) > 0 {
		p.mu.Lock()
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf)
		p.mu.Unlock()
		p.buf = nil
	}
}

// exitStatus is a finished rank's status: its exit code, or 128+N when
// signal N ended it.
func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 1
}

// failureCode is launch's exit status when rank r failed first with status
// code: rank 0's own status, else 100+r (at most 125).
func failureCode(r, code int) int {
	if r == 0 {
		return code
	}
	return min(100+r, 125)
}

func runLaunch(cmd *cobra.Command, f launchFlags, args []string) error {
	self, err := launchSelf()
	if err != nil {
		return fmt.Errorf("launch: finding genkit's executable: %w", err)
	}
	dir, err := os.MkdirTemp("", "genkit-launch-")
	if err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	defer os.RemoveAll(dir)
	envs, err := launchPlan(f.n, f.backend, f.initTimeout, dir)
	if err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	// Our own channel tells which signal came; Main's handler (which also
	// receives it) cancels the context and sets the exit status 128+N.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	var outMu sync.Mutex
	stderr := cmd.ErrOrStderr()
	type exit struct {
		rank int
		err  error
	}
	exited := make(chan exit, f.n)
	cmds := make([]*exec.Cmd, f.n)
	writers := []*prefixWriter{}
	for r := 0; r < f.n; r++ {
		c := exec.Command(self, args...)
		c.Env = rankEnv(os.Environ(), envs[r])
		setRankAttrs(c)
		if r == 0 {
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, cmd.OutOrStdout(), stderr
		} else {
			pw := &prefixWriter{mu: &outMu, w: stderr, prefix: fmt.Sprintf("[rank %d] ", r)}
			writers = append(writers, pw)
			c.Stdout, c.Stderr = pw, pw
		}
		if err := c.Start(); err != nil {
			for _, started := range cmds[:r] {
				_ = started.Process.Kill()
			}
			for range cmds[:r] {
				<-exited // reaped by their Wait
			}
			return fmt.Errorf("launch: starting rank %d: %w", r, err)
		}
		cmds[r] = c
		go func(r int) { exited <- exit{r, c.Wait()} }(r)
	}

	alive := f.n
	done := make([]bool, f.n)
	signalAlive := func(s os.Signal) {
		for r, c := range cmds {
			if !done[r] {
				_ = c.Process.Signal(s)
			}
		}
	}
	// stop asks the ranks still running to end (SIGTERM), then kills them
	// after the grace period.
	var kill <-chan time.Time
	stopping := false
	stop := func() {
		if stopping {
			return
		}
		stopping = true
		signalAlive(syscall.SIGTERM)
		kill = time.After(f.grace)
	}
	var (
		failed      = -1
		failStatus  int
		interrupted bool
		rank0Ended  <-chan time.Time
		rank0OK     bool
	)
	// Main cancels the context on a signal; should one come before our own
	// channel was registered, the context still stops the ranks.
	cancelled := cmd.Context().Done()
	for alive > 0 {
		select {
		case s := <-sigs:
			interrupted = true
			signalAlive(s)
			if kill == nil {
				kill = time.After(f.grace)
			}
		case <-cancelled:
			cancelled = nil
			if !interrupted {
				interrupted = true
				signalAlive(syscall.SIGTERM)
				if kill == nil {
					kill = time.After(f.grace)
				}
			}
		case <-kill:
			signalAlive(os.Kill)
		case <-rank0Ended:
			rank0Ended = nil
			stop()
		case e := <-exited:
			done[e.rank] = true
			alive--
			code := exitStatus(e.err)
			switch {
			case code == 0 || stopping || interrupted:
			case rank0OK:
				// Rank 0 finished its work: a follower failing on the way out
				// (its peer gone) is reported but does not fail the run.
				fmt.Fprintf(stderr, "genkit: launch: rank %d exited with status %d after rank 0 ended\n", e.rank, code)
			case failed < 0:
				failed, failStatus = e.rank, code
				stop()
			}
			if e.rank == 0 {
				rank0OK = code == 0 && failed < 0
				if alive > 0 && !stopping {
					rank0Ended = time.After(f.grace)
				}
			}
		}
	}
	for _, w := range writers {
		w.flush()
	}
	switch {
	case interrupted:
		return interruptedError{"launch"}
	case failed >= 0:
		fmt.Fprintf(stderr, "genkit: launch: rank %d of %d exited with status %d; the other ranks were stopped\n", failed, f.n, failStatus)
		return exitCode(failureCode(failed, failStatus))
	}
	return nil
}

// newDistCheckCmd is a hidden diagnostic: join the group genkit launch set
// up, all-sum and all-gather each rank's number, print what came back.
func newDistCheckCmd() *cobra.Command {
	var (
		hold     time.Duration
		failRank int
		iters    int
		dim      int
		lateFail int
	)
	cmd := &cobra.Command{
		Use:    "dist-check",
		Short:  "Check the distributed group genkit launch starts (diagnostic)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if rank, err := strconv.Atoi(os.Getenv(engine.EnvDistRank)); err == nil && rank == failRank {
				fmt.Fprintf(cmd.ErrOrStderr(), "dist-check: rank %d fails on purpose\n", rank)
				return exitCode(3)
			}
			g, err := engine.InitDistributed(ctx)
			if err != nil {
				return err
			}
			if g == nil {
				// Not launched (or launched with -n 1): a group of one.
				if g, err = engine.SingleGroup(ctx); err != nil {
					return err
				}
			}
			msg, err := engine.CheckDistributed(ctx, g)
			if err != nil {
				return fmt.Errorf("dist-check (%v): %w", g, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), msg)
			if iters > 0 {
				per, err := engine.AllSumLatency(ctx, g, iters, dim)
				if err != nil {
					return fmt.Errorf("dist-check (%v): %w", g, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "rank %d: all_sum of %d float32 (one decode row), evaluated one at a time: %.1f µs each (%d rounds)\n", g.Rank(), dim, float64(per.Nanoseconds())/1e3, iters)
			}
			if g.Rank() == lateFail {
				time.Sleep(3 * time.Second) // rank 0 has ended by then
				fmt.Fprintf(cmd.ErrOrStderr(), "dist-check: rank %d fails late on purpose\n", g.Rank())
				return exitCode(4)
			}
			if hold > 0 {
				select {
				case <-time.After(hold):
				case <-ctx.Done():
					return interrupted(cmd)
				}
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&hold, "hold", 0, "stay up this long after the check")
	cmd.Flags().IntVar(&failRank, "fail-rank", -1, "this rank exits with status 3 at once (to test the launcher)")
	cmd.Flags().IntVar(&lateFail, "late-fail-rank", -1, "this rank exits with status 4 three seconds after the check, when rank 0 has ended (to test the launcher)")
	cmd.Flags().IntVar(&iters, "iters", 0, "then time this many all-sums of a [1, dim] float32 row")
	cmd.Flags().IntVar(&dim, "dim", 576, "the row's width for --iters (a model's hidden size)")
	return cmd
}

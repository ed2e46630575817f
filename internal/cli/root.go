// Package cli holds genkit's command line: flag parsing and output formats.
// The work itself lives in the engine, sampling and steering libraries.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/spf13/cobra"
)

// exitCode is an error that carries only a process exit status (the UI's
// 130 after ctrl+c, say): nothing more is printed.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// interruptedError reports a command that a signal (or its context) stopped
// before it finished. Main prints it ("genkit: vector make: interrupted")
// and exits 128+N; it unwraps to context.Canceled.
type interruptedError struct{ command string }

func (e interruptedError) Error() string { return e.command + ": interrupted" }

func (e interruptedError) Unwrap() error { return context.Canceled }

// interrupted is the interruptedError of cmd, named without "genkit".
func interrupted(cmd *cobra.Command) error {
	return interruptedError{strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")}
}

// Main runs genkit with args and returns the process exit code: 0, 1 on an
// error, 128+N when signal N (SIGINT, SIGTERM, SIGHUP) ended the command
// (which cancels its context first, so work in flight stops and the TUI
// saves its session).
func Main(args []string) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	var got atomic.Int32
	go func() {
		if s, ok := <-sigs; ok {
			if n, ok := s.(syscall.Signal); ok {
				got.Store(int32(n))
			}
			cancel()
		}
	}()
	root := newRoot()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var ec exitCode
	switch {
	case got.Load() != 0:
		// A command that reports the interruption gets its line; others
		// print nothing (the UI has saved its session, say).
		var ie interruptedError
		if errors.As(err, &ie) {
			fmt.Fprintln(os.Stderr, "genkit:", err)
		}
		return 128 + int(got.Load())
	case errors.As(err, &ec):
		return int(ec)
	case err != nil:
		fmt.Fprintln(os.Stderr, "genkit:", err)
		return 1
	}
	return 0
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "genkit",
		Short:         "Persona steering on MLX: base and steered decoding side by side",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var device string
	root.PersistentFlags().StringVar(&device, "device", "", "where MLX runs: auto (the GPU when the linked backend has a usable one), gpu or cpu (default $"+engine.DeviceEnv+", else auto)")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		return chooseDevice(cmd, device)
	}
	root.AddCommand(newVersionCmd(), newLogitsCmd(), newGenerateCmd(), newTokenizeCmd(), newVectorCmd(), newSmokeCmd(), newScoreCmd(), newConvertCmd(), newBenchCmd(), newExportCmd(), newLaunchCmd(), newDistCheckCmd())
	// Without a subcommand genkit opens the terminal UI.
	var ui uiFlags
	ui.register(root)
	root.RunE = func(cmd *cobra.Command, args []string) error { return ui.run(cmd) }
	return root
}

// chooseDevice applies --device (else $GENKIT_DEVICE, else auto) before any
// MLX work and prints auto's fallback notice.
func chooseDevice(cmd *cobra.Command, flag string) error {
	notice, err := engine.SelectDevice(flag, cmd.Flags().Changed("device"))
	if err != nil {
		return err
	}
	if notice != "" {
		fmt.Fprintln(cmd.ErrOrStderr(), "genkit:", notice)
	}
	return nil
}

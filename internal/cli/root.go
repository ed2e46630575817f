// Package cli holds genkit's command line: flag parsing and output formats.
// The work itself lives in the engine, sampling and steering libraries.
package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
	"github.com/spf13/cobra"
)

// Main runs genkit with args and returns the process exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	root := newRoot()
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
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
	root.PersistentFlags().StringVar(&device, "device", "", "where MLX runs: auto (the GPU when the linked backend has a usable one), gpu or cpu (default $"+mlx.DeviceEnv+", else auto)")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		return chooseDevice(cmd, device)
	}
	root.AddCommand(newVersionCmd(), newLogitsCmd(), newGenerateCmd(), newTokenizeCmd(), newVectorCmd(), newSmokeCmd(), newConvertCmd(), newBenchCmd())
	// Without a subcommand genkit opens the terminal UI.
	var ui uiFlags
	ui.register(root)
	root.RunE = func(cmd *cobra.Command, args []string) error { return ui.run(cmd) }
	return root
}

// chooseDevice applies --device (else $GENKIT_DEVICE, else auto) before any
// MLX work, prints auto's fallback notice and keeps MLX's compiled GPU kernels
// in genkit's cache unless MLX_PTX_CACHE_DIR says otherwise.
func chooseDevice(cmd *cobra.Command, flag string) error {
	choice, err := mlx.DeviceFromEnv()
	if cmd.Flags().Changed("device") {
		choice, err = mlx.ParseDeviceChoice(flag)
		if err != nil {
			err = fmt.Errorf("--%w", err)
		}
	}
	if err != nil {
		return err
	}
	if os.Getenv(mlx.KernelCacheEnv) == "" {
		if dir, err := engine.CacheDir(); err == nil {
			_ = os.Setenv(mlx.KernelCacheEnv, filepath.Join(dir, "kernels", "mlx-"+mlx.Version()))
		}
	}
	sel, err := mlx.SelectDevice(choice)
	if err != nil {
		return err
	}
	if sel.Notice != "" {
		fmt.Fprintln(cmd.ErrOrStderr(), "genkit:", sel.Notice)
	}
	return nil
}

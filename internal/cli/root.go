// Package cli holds genkit's command line: flag parsing and output formats.
// The work itself lives in the engine, sampling and steering libraries.
package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"

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
	root.AddCommand(newVersionCmd(), newLogitsCmd(), newGenerateCmd(), newTokenizeCmd(), newVectorCmd(), newSmokeCmd(), newConvertCmd(), newBenchCmd())
	// Without a subcommand genkit opens the terminal UI.
	var ui uiFlags
	ui.register(root)
	root.RunE = func(cmd *cobra.Command, args []string) error { return ui.run(cmd) }
	return root
}

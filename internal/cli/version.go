package cli

import (
	"fmt"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/spf13/cobra"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the genkit and MLX versions, the backend and the device in use",
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, err := engine.RuntimeInfo(cmd.Context())
			if err != nil {
				return err
			}
			info, err := engine.Device(cmd.Context())
			if err != nil {
				return err
			}
			backend := rt.Backend
			if backend == "" {
				backend = "cpu"
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "genkit (MLX %s, backend %s, device %s)\n", rt.Version, backend, info.Device)
			fmt.Fprintf(out, "device: %s\n", info)
			if rt.KernelCache != "" {
				fmt.Fprintf(out, "kernel cache: %s\n", rt.KernelCache)
			}
			return nil
		},
	}
}

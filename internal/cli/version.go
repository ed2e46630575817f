package cli

import (
	"fmt"

	"github.com/mlx-genkit/genkit/mlx"
	"github.com/spf13/cobra"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the genkit and MLX versions, the backend and the device in use",
		RunE: func(cmd *cobra.Command, args []string) error {
			return mlx.Do(func() error {
				dev, err := mlx.DefaultDevice()
				if err != nil {
					return err
				}
				info, err := mlx.Info(dev)
				if err != nil {
					return err
				}
				backend := mlx.GPUBackend()
				if backend == "" {
					backend = "cpu"
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "genkit (MLX %s, backend %s, device %s)\n", mlx.Version(), backend, dev)
				fmt.Fprintf(out, "device: %s\n", info)
				if backend == "cuda" {
					fmt.Fprintf(out, "kernel cache: %s\n", mlx.KernelCacheDir())
				}
				return nil
			})
		},
	}
}

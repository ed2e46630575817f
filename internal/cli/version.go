package cli

import (
	"fmt"

	"github.com/mlx-genkit/genkit/mlx"
	"github.com/spf13/cobra"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the genkit and MLX versions and the device in use",
		RunE: func(cmd *cobra.Command, args []string) error {
			return mlx.Do(func() error {
				dev, err := mlx.DefaultDevice()
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "genkit (MLX %s, device %s)\n", mlx.Version(), dev)
				return nil
			})
		},
	}
}

package cli

import (
	"fmt"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/spf13/cobra"
)

func newConvertCmd() *cobra.Command {
	var out, dtype string
	var opts engine.ConvertOptions
	cmd := &cobra.Command{
		Use:   "convert SRC --out DIR [--q-bits 4|8] [--q-group 32|64] [--dtype float16|bfloat16|float32]",
		Short: "Convert a GGUF file or HF checkpoint to an MLX-format directory (loads in genkit and mlx-lm)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("--out DIR is required")
			}
			if dtype == "" {
				dtype = "float16"
			}
			dt, err := engine.ParseDType(dtype)
			if err != nil {
				return fmt.Errorf("--%w", err)
			}
			opts.DType = dt
			src, err := engine.ResolveModel(args[0], nil)
			if err != nil {
				return err
			}
			if err := engine.Convert(cmd.Context(), src, out, opts); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "output directory")
	cmd.Flags().IntVar(&opts.QBits, "q-bits", 0, "quantize to 4 or 8 bits (0: dense)")
	cmd.Flags().IntVar(&opts.QGroup, "q-group", 64, "quantization group size: 32 or 64")
	cmd.Flags().StringVar(&dtype, "dtype", "float16", "dense dtype: float16, bfloat16 or float32")
	return cmd
}

// Command genkit steers language models on MLX: a terminal UI that decodes a
// prompt base and steered side by side, and headless commands (logits,
// generate, vector, bench) for scripts.
package main

import (
	"os"

	"github.com/mlx-genkit/genkit/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}

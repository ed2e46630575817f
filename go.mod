module github.com/mlx-genkit/genkit

go 1.25.0

require github.com/spf13/cobra v1.10.2

require (
	github.com/daulet/tokenizers v1.22.1 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
)

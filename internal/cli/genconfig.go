package cli

import (
	"fmt"
	"os"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/steering"
	"github.com/spf13/pflag"
)

// genFlags are the generation settings a command takes: a
// generation_config.json (--config) and one flag per field, layered over the
// model's own generation_config.json.
type genFlags struct {
	config                                            string
	doSample, greedy, sharedDraws, renorm, removeInv  bool
	temperature, topP, minP, typicalP, eps, eta       float64
	repetition, frequency, presence, lengthPenalty    float64
	maxTime                                           float64
	topK, noRepeat, numBeams, numReturn, minNew, maxN int
	seed                                              uint64
	stop                                              []string
	earlyStopping                                     string
	fs                                                *pflag.FlagSet
}

func (g *genFlags) register(fs *pflag.FlagSet) {
	g.fs = fs
	fs.StringVar(&g.config, "config", "", "a generation_config.json to apply over the model's own")
	fs.BoolVar(&g.doSample, "do-sample", false, "sample instead of greedy decoding")
	fs.BoolVar(&g.greedy, "greedy", false, "greedy decoding (argmax); overrides --do-sample and the config")
	fs.Float64Var(&g.temperature, "temperature", 1, "sampling temperature (HF: applied before top-k/top-p)")
	fs.IntVar(&g.topK, "top-k", 50, "keep the k most likely tokens when sampling (0: off)")
	fs.Float64Var(&g.topP, "top-p", 1, "nucleus sampling mass")
	fs.Float64Var(&g.minP, "min-p", 0, "remove tokens below min-p times the top probability")
	fs.Float64Var(&g.typicalP, "typical-p", 1, "locally typical sampling mass")
	fs.Float64Var(&g.eps, "epsilon-cutoff", 0, "remove tokens below this probability")
	fs.Float64Var(&g.eta, "eta-cutoff", 0, "eta sampling cutoff")
	fs.Float64Var(&g.repetition, "repetition-penalty", 1, "HF repetition penalty over the whole sequence")
	fs.IntVar(&g.noRepeat, "no-repeat-ngram-size", 0, "ban repeating n-grams of this size")
	fs.Float64Var(&g.frequency, "frequency-penalty", 0, "OpenAI frequency penalty over generated tokens")
	fs.Float64Var(&g.presence, "presence-penalty", 0, "OpenAI presence penalty over generated tokens")
	fs.IntVar(&g.numBeams, "num-beams", 1, "beam search with this many beams")
	fs.IntVar(&g.numReturn, "num-return-sequences", 1, "beams to return")
	fs.Float64Var(&g.lengthPenalty, "length-penalty", 1, "beam score = sum logprobs / length^penalty")
	fs.StringVar(&g.earlyStopping, "early-stopping", "false", "beam search stopping: true, false or never")
	fs.IntVar(&g.minNew, "min-new-tokens", 0, "no end-of-sequence before this many new tokens")
	fs.IntVar(&g.maxN, "max-new-tokens", steering.DefaultMaxNewTokens, "tokens to generate")
	fs.Float64Var(&g.maxTime, "max-time", 0, "stop after this many seconds (0: no limit)")
	fs.Uint64Var(&g.seed, "seed", 0, "random seed (unset: drawn from the clock)")
	fs.BoolVar(&g.sharedDraws, "shared-draws", false, "base and steered lanes share each step's random number")
	fs.BoolVar(&g.renorm, "renormalize-logits", false, "log-softmax the processed scores")
	fs.BoolVar(&g.removeInv, "remove-invalid-values", false, "replace NaN/Inf scores")
	fs.StringSliceVar(&g.stop, "stop", nil, "stop strings (repeatable)")
}

func (g *genFlags) changed(name string) bool { return g.fs != nil && g.fs.Changed(name) }

// build layers the model's generation_config.json, base (a saved session's
// settings, or nil), --config and the flags, through steering.Generation
// (the one home of that rule).
func (g *genFlags) build(m *engine.Model, base *sampling.GenerationConfig) (*sampling.GenerationConfig, error) {
	layer, err := g.layer()
	if err != nil {
		return nil, err
	}
	cfg, err := steering.Generation(m, base, layer)
	if err != nil {
		return nil, err
	}
	for _, w := range append(cfg.Warnings(), layer.Warnings()...) {
		warn("%s", w)
	}
	return cfg, nil
}

// layer is what --config and the flags the user gave set.
func (g *genFlags) layer() (*sampling.GenerationConfig, error) {
	cfg := &sampling.GenerationConfig{}
	if g.config != "" {
		data, err := os.ReadFile(g.config)
		if err != nil {
			return nil, fmt.Errorf("--config: %w", err)
		}
		if err := cfg.Merge(data); err != nil {
			return nil, fmt.Errorf("--config %s: %w", g.config, err)
		}
	}
	setF := func(name string, dst **float64, v float64) {
		if g.changed(name) {
			*dst = sampling.Ptr(v)
		}
	}
	setI := func(name string, dst **int, v int) {
		if g.changed(name) {
			*dst = sampling.Ptr(v)
		}
	}
	if g.changed("do-sample") {
		cfg.DoSample = sampling.Ptr(g.doSample)
	}
	if g.greedy {
		cfg.DoSample = sampling.Ptr(false)
	}
	setF("temperature", &cfg.Temperature, g.temperature)
	setI("top-k", &cfg.TopK, g.topK)
	setF("top-p", &cfg.TopP, g.topP)
	setF("min-p", &cfg.MinP, g.minP)
	setF("typical-p", &cfg.TypicalP, g.typicalP)
	setF("epsilon-cutoff", &cfg.EpsilonCutoff, g.eps)
	setF("eta-cutoff", &cfg.EtaCutoff, g.eta)
	setF("repetition-penalty", &cfg.RepetitionPenalty, g.repetition)
	setI("no-repeat-ngram-size", &cfg.NoRepeatNgramSize, g.noRepeat)
	setF("frequency-penalty", &cfg.FrequencyPenalty, g.frequency)
	setF("presence-penalty", &cfg.PresencePenalty, g.presence)
	setI("num-beams", &cfg.NumBeams, g.numBeams)
	setI("num-return-sequences", &cfg.NumReturnSequences, g.numReturn)
	setF("length-penalty", &cfg.LengthPenalty, g.lengthPenalty)
	setI("min-new-tokens", &cfg.MinNewTokens, g.minNew)
	setF("max-time", &cfg.MaxTime, g.maxTime)
	setI("max-new-tokens", &cfg.MaxNewTokens, g.maxN)
	if g.changed("seed") {
		cfg.Seed = sampling.Ptr(g.seed)
	}
	if g.changed("renormalize-logits") {
		cfg.RenormalizeLogits = sampling.Ptr(g.renorm)
	}
	if g.changed("remove-invalid-values") {
		cfg.RemoveInvalidValues = sampling.Ptr(g.removeInv)
	}
	if g.changed("stop") {
		cfg.StopStrings = g.stop
	}
	if g.changed("early-stopping") {
		switch g.earlyStopping {
		case "true":
			cfg.EarlyStopping = &sampling.EarlyStopping{Value: true}
		case "false":
			cfg.EarlyStopping = &sampling.EarlyStopping{}
		case "never":
			cfg.EarlyStopping = &sampling.EarlyStopping{Never: true}
		default:
			return nil, fmt.Errorf("--early-stopping %q: want true, false or never", g.earlyStopping)
		}
	}
	return cfg, nil
}

package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/internal/smoke"
	"github.com/mlx-genkit/genkit/quality"
	"github.com/mlx-genkit/genkit/steering"
	"github.com/spf13/cobra"
)

// scoredLine is one line of `genkit score --json`.
type scoredLine struct {
	Text        string           `json:"text"`
	Suspect     bool             `json:"suspect"`
	Reasons     []quality.Reason `json:"reasons"`
	Persona     float64          `json:"persona"`
	Markers     float64          `json:"markers"`
	PPL         float64          `json:"ppl"`
	PPLRatio    *float64         `json:"ppl_ratio"`
	ContentKept *float64         `json:"content_kept"`
}

func newScoreCmd() *cobra.Command {
	var mf modelFlags
	var preset, linesPath, sourcePath string
	var layer int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "score --preset NAME --lines FILE [--source FILE] [--json]",
		Short: "Judge texts (one a line): faults, persona strength, fluency and content kept",
		Long: `score judges arbitrary texts, one a line (--lines -: standard input), with the measures of
genkit smoke: faults with their reasons (quality.Suspect), persona strength (mean projection of the
text on the preset's direction through the model, and the share of the preset's marker words),
perplexity under the model, and with --source (one source line per text line, the line each text
rewrites): the perplexity ratio to the source line read the same way, and the share of the
source's numbers, names and content words kept. Texts are read as the answer to smoke's rewrite
prompt for their source line (without --source, to a prompt asking for one sentence).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if preset == "" || linesPath == "" {
				return fmt.Errorf("--preset and --lines are required")
			}
			texts, err := readTextLines(linesPath)
			if err != nil {
				return err
			}
			var sources []string
			if sourcePath != "" {
				if sources, err = readTextLines(sourcePath); err != nil {
					return err
				}
				if len(sources) != len(texts) {
					return fmt.Errorf("--source has %d lines, --lines %d: one source line per text line", len(sources), len(texts))
				}
			}
			p, err := steering.PresetByName(preset)
			if err != nil {
				return err
			}
			m, err := mf.load()
			if err != nil {
				return err
			}
			defer freeModel(m)
			var opts smoke.Options
			if cmd.Flags().Changed("steer-layer") {
				opts.Layer = &layer
			}
			_, l, _, _, err := smoke.Setting(m, p, opts)
			if err != nil {
				return err
			}
			ex, err := steering.PresetVectors(cmd.Context(), m, p, steering.MethodMean, nil)
			if err != nil {
				return err
			}
			reader, err := quality.NewReader(m, l, ex.Vectors[l])
			if err != nil {
				return err
			}
			var out []scoredLine
			for i, text := range texts {
				src := ""
				if sources != nil {
					src = sources[i]
				}
				var prompt []int
				if src != "" {
					prompt, err = smoke.Prompt(m, src)
				} else {
					prompt, err = chatPrompt(m, "Write one sentence.")
				}
				if err != nil {
					return err
				}
				ids, err := m.Tokenizer.Encode(text, false)
				if err != nil {
					return fmt.Errorf("line %d: %w", i+1, err)
				}
				check := quality.Check{Source: src}
				if src != "" {
					check.Instruction = smoke.Instruction
				}
				sl := scoredLine{Text: text, Reasons: quality.Suspect(text, check), Markers: quality.MarkerRate(text, p.Markers)}
				sl.Suspect = len(sl.Reasons) > 0
				var rd, ref quality.Reading
				if err := func() error {
					var err error
					if rd, err = reader.Read(prompt, ids); err != nil || src == "" {
						return err
					}
					srcIDs, err := m.Tokenizer.Encode(src, false)
					if err != nil {
						return err
					}
					ref, err = reader.Read(prompt, srcIDs)
					return err
				}(); err != nil {
					return fmt.Errorf("line %d: %w", i+1, err)
				}
				sl.Persona, sl.PPL = rd.Projection, rd.Perplexity
				if src != "" {
					r := smoke.PPLRatio(rd.Perplexity, ref.Perplexity)
					k := quality.Kept(src, text)
					sl.PPLRatio, sl.ContentKept = &r, &k
				}
				out = append(out, sl)
			}
			sum := summarize(out)
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"preset": p.Name, "layer": l, "lines": out, "summary": sum})
			}
			w := cmd.OutOrStdout()
			for i, s := range out {
				fmt.Fprintf(w, "%3d  persona %7.3f  markers %.2f  ppl %7.2f", i+1, s.Persona, s.Markers, s.PPL)
				if s.PPLRatio != nil {
					fmt.Fprintf(w, "  ratio %5.2f  kept %.2f", *s.PPLRatio, *s.ContentKept)
				}
				if s.Suspect {
					fmt.Fprintf(w, "  SUSPECT %v", s.Reasons)
				}
				fmt.Fprintln(w)
			}
			b, _ := json.Marshal(sum)
			fmt.Fprintf(w, "summary %s\n", b)
			return nil
		},
	}
	f := cmd.Flags()
	mf.register(f)
	f.StringVar(&preset, "preset", "", "persona preset whose direction and marker words measure persona strength")
	f.StringVar(&linesPath, "lines", "", "texts to judge, one a line (- for standard input)")
	f.StringVar(&sourcePath, "source", "", "the source line each text rewrites, one a line")
	f.IntVar(&layer, "steer-layer", 0, "block whose output is projected (default: calibrated, else the preset's)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// summarize averages the lines' measures (perplexity ratios geometrically).
func summarize(lines []scoredLine) map[string]any {
	n := float64(len(lines))
	reasons := map[quality.Reason]int{}
	var suspect, persona, markers, logRatio, kept float64
	withSource := 0
	for _, l := range lines {
		if l.Suspect {
			suspect++
		}
		for _, r := range l.Reasons {
			reasons[r]++
		}
		persona += l.Persona
		markers += l.Markers
		if l.PPLRatio != nil {
			withSource++
			logRatio += math.Log(*l.PPLRatio)
			kept += *l.ContentKept
		}
	}
	s := map[string]any{"lines": len(lines), "suspect_rate": suspect / n, "reasons": reasons,
		"persona_mean": persona / n, "markers_mean": markers / n, "ppl_ratio_geomean": nil, "content_kept_mean": nil}
	if withSource > 0 {
		s["ppl_ratio_geomean"] = math.Exp(logRatio / float64(withSource))
		s["content_kept_mean"] = kept / float64(withSource)
	}
	return s
}

// chatPrompt is the chat-template prompt of one user turn.
func chatPrompt(m *engine.Model, user string) ([]int, error) {
	text, err := m.ApplyChatTemplate([]engine.Message{{Role: "user", Content: user}}, true)
	if err != nil {
		return nil, err
	}
	return m.Tokenizer.Encode(text, false)
}

// readTextLines reads the lines of a file ("-": standard input); blank lines
// stay (an empty text is a text to judge), a final newline ends the last.
func readTextLines(path string) ([]string, error) {
	var r io.Reader
	if path == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		out = append(out, strings.TrimRight(sc.Text(), "\r"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no lines", path)
	}
	return out, nil
}

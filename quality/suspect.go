// Package quality judges generated text: whether a line is broken (Suspect,
// with a reason per fault), how much of its source it keeps, how often it
// uses a persona's marker words, and (model.go) how strongly it reads as the
// persona and how fluent the unsteered model finds it. Every check has a
// labelled set of lines it must reject and lines it must accept
// (testdata/labelled.json).
package quality

import (
	"regexp"
	"strings"
	"unicode"

	"github.com/abadojack/whatlanggo"
)

// Reason names one fault of a suspect line.
type Reason string

// The faults Suspect detects.
const (
	CharRun         Reason = "char-run"         // one character 5+ times in a row ("ZZZZZ", "!!!!!")
	WordRun         Reason = "word-run"         // one word 4+ times in a row
	WordSoup        Reason = "word-soup"        // words run together: a "word" of 25+ letters
	NgramLoop       Reason = "ngram-loop"       // a phrase of 2+ words repeated 3+ times
	Language        Reason = "language"         // a language other than the source's
	EmojiSpam       Reason = "emoji-spam"       // 3+ emoji, or emoji as a large share of the text
	SymbolSpam      Reason = "symbol-spam"      // symbols as a large share of the text, or 5+ in a row
	DigitNoise      Reason = "digit-noise"      // 5+ digits in a row the source did not have, or mostly digits
	LatexNoise      Reason = "latex-noise"      // LaTeX the source did not have
	Empty           Reason = "empty"            // no letters at all
	Truncated       Reason = "truncated"        // stops mid-sentence
	TemplateToken   Reason = "template-token"   // chat-template or special tokens leaked into the text
	InstructionEcho Reason = "instruction-echo" // repeats the instruction instead of answering it
)

// Check holds what Suspect compares a line with: the source line it
// rewrites (optional) and the instruction it was given (optional).
type Check struct {
	Source      string
	Instruction string
	// Ended says the generator ended the text itself (an end-of-sequence
	// token): then a missing final stop is the model's style, not a cut.
	Ended bool
}

var (
	digitRun    = regexp.MustCompile(`\d{5,}`)
	latexRun    = regexp.MustCompile(`\\[a-zA-Z]{2,}|\$[^$\n]{0,80}[\\^_={}][^$\n]{0,80}\$|\\\(|\\\[`)
	templateTok = regexp.MustCompile(`<\|[a-zA-Z_]+\|>|</?s>|\[/?INST\]|<start_of_turn>|<end_of_turn>|<\|?(?:im_start|im_end|endoftext|eot_id)\|?>`)
	wordRE      = regexp.MustCompile(`[\p{L}\p{N}']+`)
	thousands   = regexp.MustCompile(`(\d),(\d{3})`)
)

// Suspect lists the faults of text (nil when it is fine), each at most once,
// in a fixed order.
func Suspect(text string, c Check) []Reason {
	var out []Reason
	add := func(r Reason, ok bool) {
		if ok {
			out = append(out, r)
		}
	}
	t := strings.TrimSpace(text)
	letters := 0
	for _, r := range t {
		if unicode.IsLetter(r) {
			letters++
		}
	}
	if letters == 0 {
		return []Reason{Empty}
	}
	add(CharRun, charRun(t, 5))
	words := lowerWords(t)
	add(WordRun, wordRun(words, 4))
	add(WordSoup, longestWord(words) >= 25)
	add(NgramLoop, ngramLoop(words))
	add(Language, otherLanguage(t, c.Source))
	emoji, symbols, digits, total, symRun := runeShares(t)
	add(EmojiSpam, emoji >= 3 || (emoji > 0 && float64(emoji)/float64(total) > 0.1))
	add(SymbolSpam, symRun >= 5 || (total >= 10 && float64(symbols)/float64(total) > 0.15))
	add(DigitNoise, newDigitRun(t, c.Source) || (total >= 10 && float64(digits)/float64(total) > 0.3))
	add(LatexNoise, latexRun.MatchString(t) && !latexRun.MatchString(c.Source))
	add(Truncated, !c.Ended && truncated(t))
	add(TemplateToken, templateTok.MatchString(t))
	add(InstructionEcho, echoes(words, c.Instruction))
	return out
}

// newDigitRun finds a run of 5+ digits in text that the source does not
// have, thousands separators aside ("150000" rewrites "150,000").
func newDigitRun(text, source string) bool {
	have := map[string]bool{}
	for _, r := range digitRun.FindAllString(noSeparators(source), -1) {
		have[r] = true
	}
	for _, r := range digitRun.FindAllString(noSeparators(text), -1) {
		if !have[r] {
			return true
		}
	}
	return false
}

// noSeparators drops thousands separators ("1,250,000" -> "1250000").
func noSeparators(s string) string {
	for {
		t := thousands.ReplaceAllString(s, "$1$2")
		if t == s {
			return s
		}
		s = t
	}
}

func lowerWords(t string) []string {
	ws := wordRE.FindAllString(strings.ToLower(t), -1)
	return ws
}

// charRun finds any character but a space or a digit (digit runs are
// DigitNoise's) n or more times in a row.
func charRun(t string, n int) bool {
	run, last := 0, rune(-1)
	for _, r := range t {
		if r == last && !unicode.IsSpace(r) && !unicode.IsDigit(r) {
			run++
			if run >= n {
				return true
			}
		} else {
			run, last = 1, r
		}
	}
	return false
}

func wordRun(words []string, n int) bool {
	run := 1
	for i := 1; i < len(words); i++ {
		if words[i] == words[i-1] {
			run++
			if run >= n {
				return true
			}
		} else {
			run = 1
		}
	}
	return false
}

// ngramLoop finds a phrase of 2 to 8 words that occurs 3 or more times
// (a one-sentence rewrite has no reason to say anything three times).
func ngramLoop(words []string) bool {
	for n := 2; n <= 8; n++ {
		seen := map[string]int{}
		for i := 0; i+n <= len(words); i++ {
			if allSame(words[i : i+n]) {
				continue // one word over and over is a WordRun
			}
			k := strings.Join(words[i:i+n], " ")
			seen[k]++
			if seen[k] >= 3 {
				return true
			}
		}
	}
	return false
}

func longestWord(words []string) int {
	n := 0
	for _, w := range words {
		n = max(n, len([]rune(w)))
	}
	return n
}

func allSame(ws []string) bool {
	for _, w := range ws[1:] {
		if w != ws[0] {
			return false
		}
	}
	return true
}

// LanguageOf names text's language (ISO 639-1) when the identifier is sure
// of it, else "". Trigram identification is unreliable on a few words:
// below 40 letters, or below the library's reliability threshold, it says
// nothing.
func LanguageOf(text string) string {
	return language(text, 40, whatlanggo.ReliableConfidenceThreshold)
}

// SourceLanguage names the language a source line is in, with less
// evidence than LanguageOf wants, defaulting to English (genkit's
// instructions are English).
func SourceLanguage(source string) string {
	if l := language(source, 20, 0.3); l != "" {
		return l
	}
	return "en"
}

func language(text string, minLetters int, minConfidence float64) string {
	letters := 0
	for _, r := range text {
		if unicode.IsLetter(r) {
			letters++
		}
	}
	if letters < minLetters {
		return ""
	}
	info := whatlanggo.Detect(text)
	if info.Confidence <= minConfidence {
		return ""
	}
	return info.Lang.Iso6391()
}

// otherLanguage: text is surely in a language other than the source's.
func otherLanguage(text, source string) bool {
	got := LanguageOf(text)
	return got != "" && got != SourceLanguage(source)
}

// runeShares counts emoji, symbols (anything that is neither letter, digit,
// space nor ordinary punctuation), digits and all non-space runes, and the
// longest run of consecutive symbols.
func runeShares(t string) (emoji, symbols, digits, total, longest int) {
	run := 0
	for _, r := range t {
		if unicode.IsSpace(r) {
			run = 0
			continue
		}
		total++
		switch {
		case isEmoji(r):
			emoji++
			run = 0
		case unicode.IsLetter(r) || unicode.IsMark(r):
			run = 0
		case unicode.IsDigit(r):
			digits++
			run = 0
		case strings.ContainsRune(".,;:!?'\"()-–—…’‘“”%$€£/&", r):
			run = 0
		default:
			symbols++
			run++
			longest = max(longest, run)
		}
	}
	return
}

func isEmoji(r rune) bool {
	return r >= 0x1F300 && r <= 0x1FAFF || r >= 0x2600 && r <= 0x27BF || r >= 0x1F000 && r <= 0x1F2FF || r == 0xFE0F
}

// truncated: the last character closes no sentence (a rewrite that ran out
// of tokens stops mid-sentence).
func truncated(t string) bool {
	last := []rune(t)
	r := last[len(last)-1]
	return !strings.ContainsRune(".!?\"'’”)»…*", r) && !isEmoji(r)
}

// echoes: the text starts by repeating most of the instruction's words.
func echoes(words []string, instruction string) bool {
	iw := lowerWords(instruction)
	if len(iw) < 3 || len(words) < 3 {
		return false
	}
	n := min(len(iw), len(words))
	same := 0
	for i := 0; i < n; i++ {
		if words[i] == iw[i] {
			same++
		}
	}
	if float64(same) >= 0.6*float64(min(len(iw), 8)) && same >= 3 {
		return true
	}
	return strings.Contains(strings.Join(words, " "), strings.Join(iw[:min(len(iw), 6)], " "))
}

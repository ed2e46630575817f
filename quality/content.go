package quality

import (
	"regexp"
	"strings"
	"unicode"
)

var (
	numberRE = regexp.MustCompile(`\d[\d,.]*\d|\d`)
	nameRE   = regexp.MustCompile(`\b\p{Lu}[\p{L}\-']+`)
)

// stopwords are English function words, which say nothing about content.
var stopwords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`about above after again against also among been before being below between both
	but could does doing down during each from further have having here into itself just more most much must only other
	over said says same should some such than that their them then there these they this those through under until very
	what when where which while whom with would year years your will shall were week weeks today yesterday`) {
		stopwords[w] = true
	}
}

// Content is what a source line carries: its numbers, its names (capitalised
// words not at the start of a sentence) and its content words (four letters
// or more, not stopwords).
type Content struct {
	Numbers, Names, Words []string
}

// ContentOf extracts the content of a source line.
func ContentOf(source string) Content {
	var c Content
	seen := map[string]bool{}
	for _, n := range numberRE.FindAllString(source, -1) {
		n = strings.TrimRight(strings.ReplaceAll(n, ",", ""), ".")
		if !seen["n"+n] {
			seen["n"+n] = true
			c.Numbers = append(c.Numbers, n)
		}
	}
	for _, loc := range nameRE.FindAllStringIndex(source, -1) {
		if sentenceStart(source, loc[0]) {
			continue
		}
		w := strings.ToLower(source[loc[0]:loc[1]])
		if !seen["p"+w] {
			seen["p"+w] = true
			c.Names = append(c.Names, w)
		}
	}
	for _, w := range lowerWords(source) {
		if len([]rune(w)) < 4 || stopwords[w] || seen["p"+w] || !hasLetter(w) {
			continue
		}
		if !seen["w"+w] {
			seen["w"+w] = true
			c.Words = append(c.Words, w)
		}
	}
	return c
}

func sentenceStart(s string, at int) bool {
	i := at - 1
	for i >= 0 && s[i] == ' ' {
		i--
	}
	return i < 0 || strings.ContainsRune(".!?\n\"", rune(s[i]))
}

func hasLetter(w string) bool {
	for _, r := range w {
		if unicode.IsLetter(r) {
			return true
		}
	}
	return false
}

// Kept is the share of source's numbers, names and content words found in
// text (numbers exactly, without thousands separators; words by their first
// five letters, so inflections count). 1 when the source carries nothing.
func Kept(source, text string) float64 {
	c := ContentOf(source)
	total := len(c.Numbers) + len(c.Names) + len(c.Words)
	if total == 0 {
		return 1
	}
	nums := map[string]bool{}
	for _, n := range numberRE.FindAllString(text, -1) {
		nums[strings.TrimRight(strings.ReplaceAll(n, ",", ""), ".")] = true
	}
	// Prefixes of four and five letters: a source word matches a text word
	// that starts with its first five letters (four for four-letter words).
	stems := map[string]bool{}
	for _, w := range lowerWords(text) {
		r := []rune(w)
		for _, n := range []int{4, 5} {
			if len(r) >= n {
				stems[string(r[:n])] = true
			}
		}
	}
	found := 0
	for _, n := range c.Numbers {
		if nums[n] {
			found++
		}
	}
	for _, w := range append(append([]string{}, c.Names...), c.Words...) {
		if stems[stem(w)] {
			found++
		}
	}
	return float64(found) / float64(total)
}

// stem is the prefix a source word is matched by (see Kept).
func stem(w string) string {
	r := []rune(w)
	if len(r) > 5 {
		r = r[:5]
	}
	return string(r)
}

// MarkerRate is the share of text's words that are persona markers (words
// or phrases, matched whole and case-insensitively).
func MarkerRate(text string, markers []string) float64 {
	words := lowerWords(text)
	if len(words) == 0 || len(markers) == 0 {
		return 0
	}
	joined := " " + strings.Join(words, " ") + " "
	hits := 0
	for _, m := range markers {
		mw := lowerWords(m)
		if len(mw) == 0 {
			continue
		}
		hits += strings.Count(joined, " "+strings.Join(mw, " ")+" ") * len(mw)
	}
	return float64(hits) / float64(len(words))
}

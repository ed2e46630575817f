// Package smoke measures genkit's criteria on real text: news lines from the
// Reuters-21578 sample that Debian's r-cran-tm package ships, rewritten in a
// persona by base and steered lanes.
package smoke

import (
	"encoding/xml"
	"fmt"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/mlx-genkit/genkit/engine"
)

// reutersDir finds the extracted tm/texts directory: $GENKIT_REUTERS_DIR,
// else the cache (extracting Debian's r-cran-tm there on first use).
func reutersDir() (string, error) {
	if d := os.Getenv("GENKIT_REUTERS_DIR"); d != "" {
		return d, nil
	}
	cache, err := engine.CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "reuters", "texts")
	if _, err := os.Stat(filepath.Join(dir, "crude")); err == nil {
		return dir, nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", fmt.Errorf("the news corpus comes from Debian's r-cran-tm package (apt-get download r-cran-tm); " +
			"on other systems extract its tm/texts directory and set GENKIT_REUTERS_DIR")
	}
	tmp, err := os.MkdirTemp("", "genkit-tm-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	dl := exec.Command("apt-get", "download", "r-cran-tm")
	dl.Dir = tmp
	if out, err := dl.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download r-cran-tm: %v: %s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "r-cran-tm_*.deb"))
	if len(debs) == 0 {
		return "", fmt.Errorf("apt-get download r-cran-tm left no .deb")
	}
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], filepath.Join(tmp, "x")).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb -x: %v: %s", err, out)
	}
	src := filepath.Join(tmp, "x", "usr", "lib", "R", "site-library", "tm", "texts")
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	if out, err := exec.Command("cp", "-R", src, dir).CombinedOutput(); err != nil {
		return "", fmt.Errorf("copy the corpus: %v: %s", err, out)
	}
	return dir, nil
}

type reuters struct {
	Title string `xml:"TEXT>TITLE"`
	Body  string `xml:"TEXT>BODY"`
}

var (
	spaces    = regexp.MustCompile(`\s+`)
	firstSent = regexp.MustCompile(`^(.{20,}?[.!?])\s`)
)

// NewsLines returns up to n news lines (the first sentence of each story,
// crude then acq, in file order).
func NewsLines(n int) ([]string, error) {
	dir, err := reutersDir()
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, topic := range []string{"crude", "acq"} {
		files, _ := filepath.Glob(filepath.Join(dir, topic, "*.xml"))
		sort.Strings(files)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			var r reuters
			if err := xml.Unmarshal(data, &r); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			body := strings.TrimSpace(spaces.ReplaceAllString(html.UnescapeString(r.Body), " "))
			if m := firstSent.FindStringSubmatch(body + " "); m != nil {
				body = m[1]
			}
			if len(body) < 20 {
				continue
			}
			if len(body) > 300 {
				body = body[:300]
			}
			lines = append(lines, body)
			if len(lines) == n {
				return lines, nil
			}
		}
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("%s: no news texts found", dir)
	}
	return lines, nil
}

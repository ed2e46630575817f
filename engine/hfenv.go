package engine

import (
	"os"
	"os/user"
	"regexp"
	"strings"
)

// The Hugging Face hub cache and offline switch, resolved exactly as
// huggingface_hub's constants module does (huggingface_hub 2.4.0,
// constants.py), so genkit and Python share one cache:
//
//	default_home  = join(expanduser("~"), ".cache")
//	HF_HOME       = expandvars(expanduser(getenv("HF_HOME", join(getenv("XDG_CACHE_HOME", default_home), "huggingface"))))
//	HF_HUB_CACHE  = expandvars(expanduser(getenv("HF_HUB_CACHE", getenv("HUGGINGFACE_HUB_CACHE", join(HF_HOME, "hub")))))
//	HF_HUB_OFFLINE = upper(getenv("HF_HUB_OFFLINE") or getenv("TRANSFORMERS_OFFLINE")) in {1, ON, YES, TRUE}
//
// getenv returns a variable that is set, even to "". The helpers below
// are Python's posixpath functions; scripts/reference/make_hfenv_refs.py
// records huggingface_hub's own values for the test.

// getenvDefault is os.getenv(name, def): the value when the variable is set
// (even empty), else def.
func getenvDefault(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// pyJoin is posixpath.join(a, b): b when absolute, else a and b with one
// "/" between them unless a is empty or ends in "/"; nothing is cleaned.
func pyJoin(a, b string) string {
	switch {
	case strings.HasPrefix(b, "/"):
		return b
	case a == "" || strings.HasSuffix(a, "/"):
		return a + b
	}
	return a + "/" + b
}

// pyExpandUser is posixpath.expanduser: a leading "~" or "~/" becomes $HOME
// (when set, even empty; else the password database's home), "~name" the
// home of user name; a path it cannot expand is returned unchanged.
func pyExpandUser(path string) string {
	if !strings.HasPrefix(path, "~") {
		return path
	}
	i := strings.Index(path[1:], "/") + 1
	if i == 0 {
		i = len(path)
	}
	var home string
	if i == 1 {
		if h, ok := os.LookupEnv("HOME"); ok {
			home = h
		} else if u, err := user.Current(); err == nil {
			home = u.HomeDir
		} else {
			return path
		}
	} else {
		u, err := user.Lookup(path[1:i])
		if err != nil {
			return path
		}
		home = u.HomeDir
	}
	home = strings.TrimRight(home, "/")
	if out := home + path[i:]; out != "" {
		return out
	}
	return "/"
}

// pyVar is posixpath's variable pattern: $name or ${...} (names of ASCII
// letters, digits and underscores).
var pyVar = regexp.MustCompile(`\$([A-Za-z0-9_]+|\{[^}]*\})`)

// pyExpandVars is posixpath.expandvars: $name and ${name} become the
// variable's value when it is set; others stay as written.
func pyExpandVars(path string) string {
	if !strings.Contains(path, "$") {
		return path
	}
	return pyVar.ReplaceAllStringFunc(path, func(m string) string {
		name := m[1:]
		if strings.HasPrefix(name, "{") && strings.HasSuffix(name, "}") {
			name = name[1 : len(name)-1]
		}
		if v, ok := os.LookupEnv(name); ok {
			return v
		}
		return m
	})
}

// hfHome is huggingface_hub's HF_HOME.
func hfHome() string {
	defaultHome := pyJoin(pyExpandUser("~"), ".cache")
	return pyExpandVars(pyExpandUser(getenvDefault("HF_HOME", pyJoin(getenvDefault("XDG_CACHE_HOME", defaultHome), "huggingface"))))
}

// HubCacheDir is the Hugging Face hub cache shared with Python, resolved as
// huggingface_hub resolves HF_HUB_CACHE: $HF_HUB_CACHE, else the legacy
// $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, where HF_HOME defaults to
// $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface; "~" and $VARs in
// the values are expanded.
func HubCacheDir() (string, error) {
	legacy := getenvDefault("HUGGINGFACE_HUB_CACHE", pyJoin(hfHome(), "hub"))
	return pyExpandVars(pyExpandUser(getenvDefault("HF_HUB_CACHE", legacy))), nil
}

// HubOffline reports huggingface_hub's offline switch: HF_HUB_OFFLINE, or
// TRANSFORMERS_OFFLINE when HF_HUB_OFFLINE is unset or empty, is 1, on,
// yes or true (any case).
func HubOffline() bool {
	v := os.Getenv("HF_HUB_OFFLINE")
	if v == "" {
		v = os.Getenv("TRANSFORMERS_OFFLINE")
	}
	switch strings.ToUpper(v) {
	case "1", "ON", "YES", "TRUE":
		return true
	}
	return false
}

// Package sessions saves and reopens genkit's tuning sessions (versioned
// JSON under the XDG data directory, written atomically) and exports a tuned
// configuration as a folder others can use with transformers or llama.cpp.
package sessions

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/internal/atomicfile"
	"github.com/mlx-genkit/genkit/internal/jsontext"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/steering"
)

// Version is the session file format version this build writes. Version 1
// files (steering as loose strings, layer -1 for auto) are migrated on load.
const Version = 2

// steeringV1 is the steering object of a version-1 session.
type steeringV1 struct {
	Preset    string  `json:"preset,omitempty"`
	Vector    string  `json:"vector,omitempty"`
	Method    string  `json:"method,omitempty"`
	Layer     int     `json:"layer"`
	Alpha     float64 `json:"alpha"`
	Schedule  string  `json:"schedule"`
	Mode      string  `json:"mode"`
	Scope     string  `json:"scope"`
	Normalize bool    `json:"normalize,omitempty"`
}

// plan migrates a version-1 steering object: layer -1 (the TUI's auto)
// becomes nil; the schedule string is parsed.
func (v steeringV1) plan() (steering.Plan, error) {
	p := steering.Plan{Preset: v.Preset, Vector: v.Vector, Method: steering.Method(v.Method), Alpha: &v.Alpha,
		Scope: steering.Scope(v.Scope), Mode: steering.Mode(v.Mode), Normalize: v.Normalize}
	if v.Layer != -1 {
		p.Layer = &v.Layer
	}
	sched, err := steering.ParseSchedule(v.Schedule)
	if err != nil {
		return p, fmt.Errorf("steering.schedule: %w", err)
	}
	p.Schedule = sched
	return p, nil
}

// Session is everything needed to reopen a tuning session.
type Session struct {
	Version int    `json:"version"`
	Name    string `json:"name"`
	Model   string `json:"model"`
	Prompt  string `json:"prompt"`
	System  string `json:"system,omitempty"`
	Chat    bool   `json:"chat"`
	// Messages, when set, are a conversation the prompt continues (System
	// first, Prompt as the last user turn when not empty); ChatKwargs are
	// chat-template variables. Both are optional additions to version 2.
	Messages    []engine.Message          `json:"messages,omitempty"`
	ChatKwargs  engine.ChatKwargs         `json:"chat_kwargs,omitempty"`
	Steering    steering.Plan             `json:"steering"`
	Generation  sampling.GenerationConfig `json:"generation"`
	SharedDraws bool                      `json:"shared_draws,omitempty"`
	Base        string                    `json:"base,omitempty"`    // last base output
	Steered     string                    `json:"steered,omitempty"` // last steered output
	Saved       time.Time                 `json:"saved"`
}

// PromptOf is the prompt a session decodes: its text, system prompt,
// conversation, chat switch and chat-template variables.
func (s *Session) PromptOf() engine.Prompt {
	return engine.Prompt{Text: s.Prompt, System: s.System, Messages: s.Messages, Chat: s.Chat, ChatKwargs: s.ChatKwargs}
}

// Dir is where sessions live: the sessions folder of engine.DataDir.
func Dir() (string, error) {
	d, err := engine.DataDir()
	if err != nil {
		return "", fmt.Errorf("sessions dir: %w", err)
	}
	return filepath.Join(d, "sessions"), nil
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// CheckName refuses names that are not safe file names.
func CheckName(name string) error {
	if !validName.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("session name %q: use letters, digits, '.', '_' and '-' (at most 100)", name)
	}
	return nil
}

func pathOf(name string) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	dir, err := Dir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, name+".json"), nil
}

// Save writes s atomically (a temporary file, fsync, rename), so a crash or
// a full disk never leaves a half-written session behind.
func Save(s *Session) error {
	p, err := pathOf(s.Name)
	if err != nil {
		return err
	}
	s.Version = Version
	s.Saved = time.Now().UTC().Truncate(time.Second)
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("save session %s: %w", s.Name, err)
	}
	return atomicfile.Write(p, append(data, '\n'), 0o600)
}

// Load reads a saved session by name.
func Load(name string) (*Session, error) {
	p, err := pathOf(name)
	if err != nil {
		return nil, err
	}
	return LoadFile(p)
}

// LoadFile reads a session file, refusing malformed or newer ones with a
// clear message.
func LoadFile(path string) (*Session, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	var head struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("session %s is malformed: %w", path, err)
	}
	// encoding/json turns invalid UTF-8 and lone surrogate escapes into
	// U+FFFD silently; a session's prompt and messages are model input.
	if !utf8.Valid(data) {
		at := 0
		for at < len(data) {
			r, n := utf8.DecodeRune(data[at:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			at += n
		}
		return nil, fmt.Errorf("session %s: invalid UTF-8 at byte %d", path, at)
	}
	if err := jsontext.CheckEscapes(data, false); err != nil {
		return nil, fmt.Errorf("session %s: %w", path, err)
	}
	switch {
	case head.Version == 0:
		return nil, fmt.Errorf("session %s has no version field: not a genkit session", path)
	case head.Version > Version:
		return nil, fmt.Errorf("session %s is version %d; this genkit reads up to %d", path, head.Version, Version)
	}
	var s Session
	if head.Version == 1 {
		var v1 struct {
			Session
			Steering steeringV1 `json:"steering"`
		}
		if err := json.Unmarshal(data, &v1); err != nil {
			return nil, fmt.Errorf("session %s is malformed: %w", path, err)
		}
		s = v1.Session
		p, err := v1.Steering.plan()
		if err != nil {
			return nil, fmt.Errorf("session %s: %w", path, err)
		}
		s.Steering, s.Version = p, Version
	} else if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("session %s is malformed: %w", path, err)
	}
	if err := s.Steering.Validate(); err != nil {
		return nil, fmt.Errorf("session %s: %w", path, err)
	}
	if err := s.Generation.Validate(); err != nil {
		return nil, fmt.Errorf("session %s: generation: %w", path, err)
	}
	if len(s.Messages) > 0 {
		if _, err := s.PromptOf().Conversation(); err != nil {
			return nil, fmt.Errorf("session %s: %w", path, err)
		}
	}
	if err := s.ChatKwargs.Check(); err != nil {
		return nil, fmt.Errorf("session %s: %w", path, err)
	}
	return &s, nil
}

// Info describes a saved session for a list.
type Info struct {
	Name  string
	Saved time.Time
	Model string
	Err   error
}

// List returns the saved sessions, newest first; unreadable ones are listed
// with their error.
func List() ([]Info, error) {
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	// Listing is where a session opens: killed saves' leftovers go first.
	_, _ = atomicfile.CleanStale(dir, time.Now())
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(name, ".") {
			continue
		}
		s, err := LoadFile(filepath.Join(dir, e.Name()))
		info := Info{Name: name, Err: err}
		if err == nil {
			info.Saved, info.Model = s.Saved, s.Model
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Saved.After(out[j].Saved) })
	return out, nil
}

// ErrExists reports that a session of the name asked for is saved already
// (SaveAs and Rename refuse to replace one unless told to).
var ErrExists = errors.New("a session of that name is saved already")

// replacedDir is where a session replaced on purpose (SaveAs or Rename with
// replace) is kept, under Dir(): List does not show it, nothing a user
// saved is lost.
const replacedDir = ".replaced"

// Exists reports whether a session of that name is saved.
func Exists(name string) (bool, error) {
	p, err := pathOf(name)
	if err != nil {
		return false, err
	}
	_, err = os.Stat(p)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("session %s: %w", name, err)
}

// keepReplaced moves the saved session name aside (into .replaced, with the
// time in its name) before it is replaced.
func keepReplaced(name string) error {
	p, err := pathOf(name)
	if err != nil {
		return err
	}
	dir := filepath.Join(filepath.Dir(p), replacedDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keep the replaced session %s: %w", name, err)
	}
	dst := filepath.Join(dir, name+"."+time.Now().UTC().Format("20060102T150405.000000000")+".json")
	if err := os.Rename(p, dst); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("keep the replaced session %s: %w", name, err)
	}
	return nil
}

// SaveAs saves s under name (s.Name becomes name), atomically as Save does.
// A session of that name saved already is refused with ErrExists unless
// replace is set; a replaced one is kept under Dir()/.replaced.
func SaveAs(s *Session, name string, replace bool) error {
	if err := CheckName(name); err != nil {
		return err
	}
	exists, err := Exists(name)
	if err != nil {
		return err
	}
	if exists {
		if !replace {
			return fmt.Errorf("save as %s: %w", name, ErrExists)
		}
		if err := keepReplaced(name); err != nil {
			return err
		}
	}
	s.Name = name
	if err := Save(s); err != nil {
		return fmt.Errorf("save as %s: %w", name, err)
	}
	return nil
}

// Rename renames the saved session from to to (the name inside the file
// too). The new file is written (atomically) before the old one is
// removed, so a crash between leaves both, never neither. A session saved
// as to already is refused with ErrExists unless replace is set (it is kept
// under Dir()/.replaced).
func Rename(from, to string, replace bool) error {
	if err := CheckName(to); err != nil {
		return err
	}
	if from == to {
		return nil
	}
	s, err := Load(from)
	if err != nil {
		return fmt.Errorf("rename %s: %w", from, err)
	}
	if err := SaveAs(s, to, replace); err != nil {
		return fmt.Errorf("rename %s: %w", from, err)
	}
	p, err := pathOf(from)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("rename %s to %s: the new file is written; removing the old one: %w", from, to, err)
	}
	return nil
}

// Package tui is genkit's terminal UI: a prompt decoded base and steered
// side by side, live controls for steering and sampling, sessions and
// export. The engine runs on its own MLX thread; the UI only ever receives
// snapshots.
package tui

import (
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/sessions"
)

// Settings is everything a run depends on.
type Settings struct {
	Prompt, System string
	Chat           bool
	Steering       sessions.Steering
	Gen            sampling.GenerationConfig
	SharedDraws    bool
	// Sweep runs four steered lanes at 0.5, 1, 1.5 and 2 times alpha.
	Sweep bool
}

// DefaultSettings are the settings of a new session.
func DefaultSettings() Settings {
	return Settings{
		Prompt: "Tell me about the ocean.",
		Chat:   true,
		Steering: sessions.Steering{Preset: "pirate", Method: "mean", Layer: -1, Alpha: 1, Schedule: "constant",
			Mode: "residual", Scope: "all"},
		Gen: sampling.GenerationConfig{MaxNewTokens: sampling.Ptr(64), DoSample: sampling.Ptr(false), Temperature: sampling.Ptr(0.7),
			TopK: sampling.Ptr(50), TopP: sampling.Ptr(0.9), MinP: sampling.Ptr(0.0), RepetitionPenalty: sampling.Ptr(1.0),
			NoRepeatNgramSize: sampling.Ptr(0), FrequencyPenalty: sampling.Ptr(0.0), PresencePenalty: sampling.Ptr(0.0),
			Seed: sampling.Ptr(uint64(42))},
	}
}

// laneScales are the alpha multipliers of the lanes (lane 0 is the base).
func (s Settings) laneScales() []float64 {
	if s.Sweep {
		return []float64{0, 0.5, 1, 1.5, 2}
	}
	return []float64{0, 1}
}

// ToSession stores the settings in a session.
func (s Settings) ToSession(name, model string) *sessions.Session {
	return &sessions.Session{Name: name, Model: model, Prompt: s.Prompt, System: s.System, Chat: s.Chat,
		Steering: s.Steering, Generation: s.Gen, SharedDraws: s.SharedDraws}
}

// FromSession restores settings from a session.
func FromSession(ss *sessions.Session) Settings {
	s := DefaultSettings()
	s.Prompt, s.System, s.Chat = ss.Prompt, ss.System, ss.Chat
	s.Steering, s.Gen, s.SharedDraws = ss.Steering, ss.Generation, ss.SharedDraws
	return s
}

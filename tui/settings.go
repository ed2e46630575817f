// Package tui is genkit's terminal UI: a prompt decoded base and steered
// side by side, live controls for steering and sampling, sessions and
// export. The engine runs on its own MLX thread; the UI only ever receives
// snapshots.
package tui

import (
	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/sessions"
	"github.com/mlx-genkit/genkit/steering"
)

// Settings is everything a run depends on.
type Settings struct {
	Prompt, System string
	Chat           bool
	// Messages are earlier turns the prompt continues; ChatKwargs are the
	// chat template's options (both from a session; see engine.Prompt).
	Messages   []engine.Message
	ChatKwargs engine.ChatKwargs
	Steering   steering.Plan
	// Gen are the session's generation settings, layered over the model's
	// generation_config.json (steering.Generation).
	Gen         sampling.GenerationConfig
	SharedDraws bool
	// Sweep runs four steered lanes at 0.5, 1, 1.5 and 2 times alpha.
	Sweep bool
}

// DefaultSettings are the settings of a new session: the default plan, and
// of the generation settings only the seed (so runs repeat) and the length;
// everything else is the model's or Hugging Face's default.
func DefaultSettings() Settings {
	return Settings{
		Prompt:   "Tell me about the ocean.",
		Chat:     true,
		Steering: steering.DefaultPlan(),
		Gen:      sampling.GenerationConfig{Seed: sampling.Ptr(uint64(42))},
	}
}

// laneScales are the alpha multipliers of the lanes (lane 0 is the base).
func (s Settings) laneScales() []float64 {
	if s.Sweep {
		return steering.SweepLanes
	}
	return steering.PairLanes
}

// Run is the steered run these settings describe, with generation settings
// gen (already layered).
func (s Settings) Run(gen *sampling.GenerationConfig) steering.Run {
	plan := s.Steering
	return steering.Run{Prompt: engine.Prompt{Text: s.Prompt, System: s.System, Messages: s.Messages, Chat: s.Chat, ChatKwargs: s.ChatKwargs},
		Plan: &plan, Gen: gen,
		LaneScales: s.laneScales(), SharedDraws: s.SharedDraws}
}

// ToSession stores the settings in a session.
func (s Settings) ToSession(name, model string) *sessions.Session {
	return &sessions.Session{Name: name, Model: model, Prompt: s.Prompt, System: s.System, Chat: s.Chat,
		Messages: s.Messages, ChatKwargs: s.ChatKwargs, Steering: s.Steering, Generation: s.Gen, SharedDraws: s.SharedDraws}
}

// FromSession restores settings from a session.
func FromSession(ss *sessions.Session) Settings {
	s := DefaultSettings()
	s.Prompt, s.System, s.Chat = ss.Prompt, ss.System, ss.Chat
	s.Messages, s.ChatKwargs = ss.Messages, ss.ChatKwargs
	s.Steering, s.Gen, s.SharedDraws = ss.Steering, ss.Generation, ss.SharedDraws
	return s
}

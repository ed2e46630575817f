// Package themes holds genkit's colour palettes (dark, light, high
// contrast) and builds the terminal UI's styles from one.
package themes

import (
	"fmt"
	"image/color"
	"os"

	"charm.land/bubbles/v2/textarea"
	"charm.land/lipgloss/v2"
)

// Palette names the colours the UI uses, by role.
type Palette struct {
	Name                   string
	Text, Muted, Accent    color.Color
	Inactive               color.Color // a control with no effect now (nil: faint text)
	Base, Steered          color.Color // pane accents
	Border, Focus          color.Color
	Error, OK, Warn        color.Color
	ProjLow, ProjHigh      color.Color // token colouring by projection
	StatusBg, StatusFg     color.Color
	SelectedBg, SelectedFg color.Color
}

var (
	// Dark suits dark terminal backgrounds.
	Dark = Palette{Name: "dark", Text: lipgloss.Color("#E4E4E7"), Muted: lipgloss.Color("#8A8A93"), Accent: lipgloss.Color("#A78BFA"), Inactive: lipgloss.Color("#5E5E68"),
		Base: lipgloss.Color("#60A5FA"), Steered: lipgloss.Color("#F472B6"), Border: lipgloss.Color("#3F3F46"), Focus: lipgloss.Color("#A78BFA"),
		Error: lipgloss.Color("#F87171"), OK: lipgloss.Color("#4ADE80"), Warn: lipgloss.Color("#FBBF24"),
		ProjLow: lipgloss.Color("#93C5FD"), ProjHigh: lipgloss.Color("#F9A8D4"),
		StatusBg: lipgloss.Color("#27272A"), StatusFg: lipgloss.Color("#D4D4D8"), SelectedBg: lipgloss.Color("#4C1D95"), SelectedFg: lipgloss.Color("#F5F3FF")}
	// Light suits light backgrounds.
	Light = Palette{Name: "light", Text: lipgloss.Color("#18181B"), Muted: lipgloss.Color("#6B7280"), Accent: lipgloss.Color("#6D28D9"), Inactive: lipgloss.Color("#A8A8B0"),
		Base: lipgloss.Color("#1D4ED8"), Steered: lipgloss.Color("#BE185D"), Border: lipgloss.Color("#D4D4D8"), Focus: lipgloss.Color("#6D28D9"),
		Error: lipgloss.Color("#B91C1C"), OK: lipgloss.Color("#15803D"), Warn: lipgloss.Color("#B45309"),
		ProjLow: lipgloss.Color("#1E40AF"), ProjHigh: lipgloss.Color("#9D174D"),
		StatusBg: lipgloss.Color("#E4E4E7"), StatusFg: lipgloss.Color("#27272A"), SelectedBg: lipgloss.Color("#DDD6FE"), SelectedFg: lipgloss.Color("#1E1B4B")}
	// HighContrast uses only pure colours on black.
	HighContrast = Palette{Name: "high-contrast", Text: lipgloss.Color("#FFFFFF"), Muted: lipgloss.Color("#FFFFFF"), Accent: lipgloss.Color("#FFFF00"),
		Base: lipgloss.Color("#00FFFF"), Steered: lipgloss.Color("#FF00FF"), Border: lipgloss.Color("#FFFFFF"), Focus: lipgloss.Color("#FFFF00"),
		Error: lipgloss.Color("#FF0000"), OK: lipgloss.Color("#00FF00"), Warn: lipgloss.Color("#FFFF00"),
		ProjLow: lipgloss.Color("#00FFFF"), ProjHigh: lipgloss.Color("#FF00FF"),
		StatusBg: lipgloss.Color("#FFFFFF"), StatusFg: lipgloss.Color("#000000"), SelectedBg: lipgloss.Color("#FFFF00"), SelectedFg: lipgloss.Color("#000000")}
)

// All lists the palettes by name.
var All = []Palette{Dark, Light, HighContrast}

// ByName finds a palette.
func ByName(name string) (Palette, error) {
	for _, p := range All {
		if p.Name == name {
			return p, nil
		}
	}
	return Palette{}, fmt.Errorf("theme %q: want dark, light or high-contrast", name)
}

// ForBackground picks dark or light for the terminal's background.
func ForBackground(isDark bool) Palette {
	if isDark {
		return Dark
	}
	return Light
}

// NoColor reports whether the user asked for no colour (NO_COLOR set).
func NoColor() bool { _, ok := os.LookupEnv("NO_COLOR"); return ok }

// Styles are the UI's styles, built from one palette.
type Styles struct {
	Palette                      Palette
	Title, Muted, Error, OK      lipgloss.Style
	Warn                         lipgloss.Style
	Pane, PaneFocused            lipgloss.Style
	BaseTitle, SteeredTitle      lipgloss.Style
	Status, Selected, Label, Key lipgloss.Style
	Diff                         lipgloss.Style
	// Header is the top row; Mark is the inspected token in its pane;
	// PinnedTitle titles a pinned or past run's pane; Tab and TabActive
	// are the lane tabs of a narrow terminal.
	Header, Mark, PinnedTitle, Tab, TabActive lipgloss.Style
	// HelpKey, HelpDesc and HelpSep draw the help line (its keys, their
	// descriptions and the separators).
	HelpKey, HelpDesc, HelpSep lipgloss.Style
	// Editor styles the text editors (the prompt, the system prompt, the
	// vector texts).
	Editor textarea.Styles
	// Inactive greys out a control that has no effect under the other
	// settings; SelectedInactive is such a control selected.
	Inactive, SelectedInactive lipgloss.Style
}

// NewStyles builds the styles; plain drops every colour (NO_COLOR).
func NewStyles(p Palette, plain bool) Styles {
	c := func(col color.Color) color.Color {
		if plain {
			return lipgloss.NoColor{}
		}
		return col
	}
	border := lipgloss.RoundedBorder()
	s := Styles{Palette: p}
	s.Title = lipgloss.NewStyle().Bold(true).Foreground(c(p.Accent))
	s.Muted = lipgloss.NewStyle().Foreground(c(p.Muted))
	s.Error = lipgloss.NewStyle().Bold(true).Foreground(c(p.Error))
	s.OK = lipgloss.NewStyle().Foreground(c(p.OK))
	s.Warn = lipgloss.NewStyle().Foreground(c(p.Warn))
	s.Pane = lipgloss.NewStyle().Border(border).BorderForeground(c(p.Border)).Padding(0, 1)
	s.PaneFocused = s.Pane.BorderForeground(c(p.Focus))
	s.BaseTitle = lipgloss.NewStyle().Bold(true).Foreground(c(p.Base))
	s.SteeredTitle = lipgloss.NewStyle().Bold(true).Foreground(c(p.Steered))
	s.Status = lipgloss.NewStyle().Foreground(c(p.StatusFg)).Background(c(p.StatusBg))
	s.Selected = lipgloss.NewStyle().Bold(true).Foreground(c(p.SelectedFg)).Background(c(p.SelectedBg))
	s.Label = lipgloss.NewStyle().Foreground(c(p.Muted))
	s.Key = lipgloss.NewStyle().Bold(true).Foreground(c(p.Accent))
	s.Diff = lipgloss.NewStyle().Underline(true)
	s.Header = lipgloss.NewStyle().Foreground(c(p.Muted))
	s.Mark = lipgloss.NewStyle().Bold(true).Foreground(c(p.SelectedFg)).Background(c(p.SelectedBg))
	s.PinnedTitle = lipgloss.NewStyle().Bold(true).Foreground(c(p.Accent))
	s.Tab = lipgloss.NewStyle().Foreground(c(p.Muted))
	s.TabActive = lipgloss.NewStyle().Bold(true).Underline(true).Foreground(c(p.Accent))
	s.HelpKey = lipgloss.NewStyle().Bold(true).Foreground(c(p.Accent))
	s.HelpDesc = lipgloss.NewStyle().Foreground(c(p.Muted))
	s.HelpSep = lipgloss.NewStyle().Foreground(c(p.Border))
	// Greyed: the palette's dim colour, or faint text where it has none
	// (high contrast) or there is no colour; selected, the selection's
	// colours made faint (not bold: bold and faint together are either).
	s.Inactive = lipgloss.NewStyle().Foreground(c(p.Inactive))
	if p.Inactive == nil || plain {
		s.Inactive = lipgloss.NewStyle().Faint(true)
	}
	if plain {
		s.Status = lipgloss.NewStyle().Reverse(true)
		s.Selected = lipgloss.NewStyle().Reverse(true)
		s.Mark = lipgloss.NewStyle().Reverse(true)
	}
	s.SelectedInactive = s.Selected.Bold(false).Faint(true)
	s.Editor = editorStyles(p, plain)
	return s
}

// Projection colours a token by its projection on the persona vector, t in
// [0, 1] from low to high.
func (s Styles) Projection(t float64, plain bool) lipgloss.Style {
	if plain {
		return lipgloss.NewStyle()
	}
	switch {
	case t > 0.66:
		return lipgloss.NewStyle().Foreground(s.Palette.ProjHigh).Bold(true)
	case t > 0.33:
		return lipgloss.NewStyle().Foreground(s.Palette.ProjHigh)
	default:
		return lipgloss.NewStyle().Foreground(s.Palette.ProjLow)
	}
}

// editorStyles are the text editors' styles from the palette (none with no
// colour).
func editorStyles(p Palette, plain bool) textarea.Styles {
	if plain {
		return textarea.Styles{}
	}
	focused := textarea.StyleState{
		Base:        lipgloss.NewStyle(),
		Text:        lipgloss.NewStyle().Foreground(p.Text),
		CursorLine:  lipgloss.NewStyle().Foreground(p.Text),
		Placeholder: lipgloss.NewStyle().Foreground(p.Muted),
		Prompt:      lipgloss.NewStyle().Foreground(p.Focus),
		EndOfBuffer: lipgloss.NewStyle().Foreground(p.Border),
		LineNumber:  lipgloss.NewStyle().Foreground(p.Muted),
		Selection:   lipgloss.NewStyle().Foreground(p.SelectedFg).Background(p.SelectedBg),
	}
	focused.CursorLineNumber = focused.LineNumber
	blurred := focused
	blurred.Text = lipgloss.NewStyle().Foreground(p.Muted)
	blurred.CursorLine = blurred.Text
	blurred.Prompt = lipgloss.NewStyle().Foreground(p.Border)
	return textarea.Styles{Focused: focused, Blurred: blurred, Cursor: textarea.CursorStyle{Color: p.Accent, Blink: true}}
}

package tui

import (
	"strings"

	"charm.land/bubbles/v2/textarea"
	tea "charm.land/bubbletea/v2"
	"github.com/mlx-genkit/genkit/themes"
)

// editorKind names one of the text editors.
type editorKind int

const (
	edPrompt editorKind = iota
	edSystem
	edPositive // contrastive texts for a vector of the user's own
	edNegative
	numEditors
)

var editorLabels = [numEditors]string{
	edPrompt:   "prompt",
	edSystem:   "system prompt",
	edPositive: "make a vector: positive texts (the persona), one per line",
	edNegative: "make a vector: negative texts (the opposite), paired by line",
}

// editors are the text editors: the prompt, the system prompt and the
// positive and negative texts a vector is made from. One shows at a time,
// in the box above the lanes: the focused one, else the prompt.
type editors struct {
	ta      [numEditors]textarea.Model
	active  editorKind
	focused bool
	height  int
}

func newEditors(prompt, system string, plain bool) editors {
	var e editors
	placeholders := [numEditors]string{
		edPrompt:   "Type a prompt…",
		edSystem:   "System prompt (optional)",
		edPositive: "Positive texts, one per line (the persona)",
		edNegative: "Negative texts, one per line (the opposite), paired by line",
	}
	for i := range e.ta {
		t := textarea.New()
		t.Placeholder = placeholders[i]
		t.ShowLineNumbers = false
		if plain {
			// NO_COLOR: the component's own colours go too.
			t.SetStyles(textarea.Styles{})
		}
		e.ta[i] = t
	}
	e.ta[edPrompt].SetValue(prompt)
	e.ta[edSystem].SetValue(system)
	return e
}

// Focus shows and focuses editor k.
func (e *editors) Focus(k editorKind) tea.Cmd {
	e.Blur()
	e.active, e.focused = k, true
	return e.ta[k].Focus()
}

// Blur leaves the editors; the prompt shows again.
func (e *editors) Blur() {
	for i := range e.ta {
		e.ta[i].Blur()
	}
	e.active, e.focused = edPrompt, false
}

// SetSize sizes every editor: w columns (the box around it included) and h
// lines of text.
func (e *editors) SetSize(w, h int) {
	e.height = h
	for i := range e.ta {
		e.ta[i].SetWidth(max(10, w-4))
		e.ta[i].SetHeight(h)
	}
}

// Height is the editor box's height in lines (text, label and border).
func (e editors) Height() int { return e.height + 3 }

// Value is editor k's text.
func (e editors) Value(k editorKind) string { return e.ta[k].Value() }

// SetValue replaces editor k's text.
func (e *editors) SetValue(k editorKind, s string) { e.ta[k].SetValue(s) }

// Pairs are the vector editors' texts, one per non-blank line.
func (e editors) Pairs() (pos, neg []string) {
	return lines(e.ta[edPositive].Value()), lines(e.ta[edNegative].Value())
}

// Update passes a message (a key the UI does not bind, a paste, the cursor
// blink) to the focused editor.
func (e *editors) Update(msg tea.Msg) tea.Cmd {
	if !e.focused {
		return nil
	}
	var cmd tea.Cmd
	e.ta[e.active], cmd = e.ta[e.active].Update(msg)
	return cmd
}

// View draws the shown editor in its box, width columns wide.
func (e editors) View(width int, st themes.Styles) string {
	box := st.Pane
	if e.focused {
		box = st.PaneFocused
	}
	return box.Width(width).Render(st.Label.Render(editorLabels[e.active]) + "\n" + e.ta[e.active].View())
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

package engine_test

import (
	"context"
	"os"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
)

func TestSmokeGenerate(t *testing.T) {
	path := os.Getenv("GENKIT_DEFAULT_MODEL")
	var m *engine.Model
	err := mlx.Do(func() error {
		var err error
		m, err = engine.LoadModel(path, engine.LoadOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := m.Tokenizer.Encode("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n", true)
	t.Log(ids)
	res, st, err := m.Generate(context.Background(), engine.Request{Prompt: ids, Lanes: 2, MaxNewTokens: 20, EOS: m.Tokenizer.EOS})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%q %v", m.Tokenizer.Decode(res[0].Tokens, false), st)
	t.Logf("%q", m.Tokenizer.Decode(res[1].Tokens, false))
}

func TestChatTemplateSmol(t *testing.T) {
	path := os.Getenv("GENKIT_DEFAULT_MODEL")
	err := mlx.Do(func() error {
		m, err := engine.LoadModel(path, engine.LoadOptions{})
		if err != nil {
			return err
		}
		defer m.Free()
		s, err := m.ApplyChatTemplate([]engine.Message{{Role: "user", Content: "Hi"}}, true)
		t.Logf("%q %v", s, err)
		s, err = m.ApplyChatTemplate([]engine.Message{{Role: "system", Content: "Be a pirate."}, {Role: "user", Content: "Hi"}}, true)
		t.Logf("%q %v", s, err)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

package sampling

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzGenerationConfig: any generation_config.json either fails to merge
// or gives a config that Validate judges without panicking; a config that
// validates survives a save/load round trip as JSON.
func FuzzGenerationConfig(f *testing.F) {
	f.Add([]byte(`{"do_sample":true,"temperature":0.7,"top_p":0.9,"top_k":20,"max_new_tokens":64,"eos_token_id":[1,2],"transformers_version":"4.46"}`))
	f.Add([]byte(`{"num_beams":4,"early_stopping":"never","exponential_decay_length_penalty":[5,1.01],"sequence_bias":[[[1,2],-1.5]]}`))
	f.Add([]byte(`{"bad_words_ids":[[]],"stop_strings":"x","max_new_tokens":-1,"temperature":1e400}`))
	f.Add([]byte(`{"sequence_bias":{"(1, 2)":1}}`))
	f.Add([]byte(strings.Repeat(`{"a":`, 5000)))
	f.Add([]byte("{\"stop_strings\":[\"\xff\"]}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c GenerationConfig
		if err := c.Merge(data); err != nil {
			return
		}
		_ = c.Warnings()
		if c.Validate() != nil {
			return
		}
		out, err := json.Marshal(&c)
		if err != nil {
			t.Fatalf("a valid config does not marshal: %v", err)
		}
		var back GenerationConfig
		if err := back.Merge(out); err != nil {
			t.Fatalf("a valid config's JSON %s does not read back: %v", out, err)
		}
	})
}

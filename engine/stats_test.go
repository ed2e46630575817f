package engine_test

import (
	"context"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
)

// TestDecodeStatsSplitBuildQueueWait: the pipelined loop's Stats split its
// decode time into the host's graph building, its async_eval calls and its
// waiting for tokens, each measured and together within Decode; the
// synchronous loop reports none.
func TestDecodeStatsSplitBuildQueueWait(t *testing.T) {
	m := load(t, hfDir("llama_tied"), engine.LoadOptions{})
	req := engine.Request{Prompt: []int{1, 2, 3}, Lanes: 2, MaxNewTokens: 12, IgnoreEOS: true}
	_, st, err := m.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if st.Steps != 12 || st.Build <= 0 || st.Queue <= 0 || st.Wait <= 0 || st.Build+st.Queue+st.Wait > st.Decode {
		t.Errorf("pipelined: %d steps, build %v + queue %v + wait %v against decode %v", st.Steps, st.Build, st.Queue, st.Wait, st.Decode)
	}
	req.Sync = true
	_, st, err = m.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if st.Steps != 12 || st.Build != 0 || st.Queue != 0 || st.Wait != 0 || st.Decode <= 0 {
		t.Errorf("synchronous: %d steps, build %v, queue %v, wait %v, decode %v", st.Steps, st.Build, st.Queue, st.Wait, st.Decode)
	}
}

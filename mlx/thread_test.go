package mlx_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mlx-genkit/genkit/mlx"
)

// TestDoGivesUpWhileQueued: a call waiting for the MLX thread (another call
// holds it) returns ctx's error once ctx is cancelled, without running; a
// cancelled ctx never starts work; a running call runs to the end.
func TestDoGivesUpWhileQueued(t *testing.T) {
	hold := make(chan struct{})
	holding := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- mlx.Do(context.Background(), func() error {
			close(holding)
			<-hold
			return nil
		})
	}()
	<-holding
	ctx, cancel := context.WithCancel(context.Background())
	ran := false
	queued := make(chan error, 1)
	go func() { queued <- mlx.Do(ctx, func() error { ran = true; return nil }) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-queued:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("queued call: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled queued call kept waiting for the thread")
	}
	close(hold)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if ran {
		t.Fatal("the cancelled call ran")
	}
	if err := mlx.Do(ctx, func() error { ran = true; return nil }); !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("already-cancelled ctx: err %v, ran %v", err, ran)
	}
	// A live ctx runs as before.
	if err := mlx.Do(context.Background(), func() error { ran = true; return nil }); err != nil || !ran {
		t.Fatalf("live call: err %v, ran %v", err, ran)
	}
}

// TestCall returns fn's value and error from the MLX thread.
func TestCall(t *testing.T) {
	n, err := mlx.Call(context.Background(), func() (int, error) {
		if !mlx.OnThread() {
			return 0, errors.New("not on the MLX thread")
		}
		a, err := mlx.FromFloat32s([]float32{1, 2, 3}, 3)
		if err != nil {
			return 0, err
		}
		defer a.Free()
		return a.Size(), nil
	})
	if err != nil || n != 3 {
		t.Fatalf("Call: %d, %v", n, err)
	}
	boom := errors.New("boom")
	if _, err := mlx.Call(context.Background(), func() (string, error) { return "", boom }); !errors.Is(err, boom) {
		t.Fatalf("Call error: %v", err)
	}
}

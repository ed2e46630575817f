package mlx

import (
	"context"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestMLXThreadBlocksProcessSignals: a thread started from the MLX thread
// (as MLX's and the CUDA driver's are) blocks SIGINT, SIGTERM and SIGHUP, so
// a signal sent to the process is handled on a Go thread; a thread started
// from an ordinary Go thread blocks none of them (the probe can tell).
func TestMLXThreadBlocksProcessSignals(t *testing.T) {
	want := uint64(1)<<syscall.SIGINT | uint64(1)<<syscall.SIGTERM | uint64(1)<<syscall.SIGHUP
	got, err := Call(context.Background(), func() (uint64, error) { return childBlockedSignals(), nil })
	if err != nil {
		t.Fatal(err)
	}
	if got == ^uint64(0) {
		t.Fatal("could not start a thread from the MLX thread")
	}
	if got&want != want {
		t.Errorf("a thread started from the MLX thread blocks signals %#x, want SIGINT, SIGTERM and SIGHUP (%#x) among them", got, want)
	}
	plain := make(chan uint64)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		plain <- childBlockedSignals()
	}()
	if p := <-plain; p&want != 0 {
		t.Errorf("a thread started from a plain Go thread blocks %#x: the probe cannot tell blocked from open", p&want)
	}
}

// TestSignalReachesGoWhileMLXWorks: a process-directed signal that Go was
// asked for (os/signal) arrives while the MLX thread is inside MLX work.
func TestSignalReachesGoWhileMLXWorks(t *testing.T) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	defer signal.Stop(ch)
	busy := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Do(context.Background(), func() error {
			close(busy)
			x, err := Full(0.001, Float32, 512, 512)
			if err != nil {
				return err
			}
			defer x.Free()
			for i := 0; i < 40; i++ {
				y, err := Matmul(x, x)
				if err != nil {
					return err
				}
				if err := Eval(y); err != nil {
					y.Free()
					return err
				}
				y.Free()
			}
			return nil
		})
	}()
	<-busy
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("SIGUSR1 sent to the process did not reach os/signal within 10 s")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

package testkit

import (
	"context"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestWaitForReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	WaitFor(t, 5*time.Second, "three polls", func() bool { return n.Add(1) >= 3 })
	if n.Load() != 3 {
		t.Fatalf("polled %d times, want 3", n.Load())
	}
}

func TestContextEndsWithItsTimeout(t *testing.T) {
	ctx := Context(t, 10*time.Millisecond)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("context did not end after its timeout")
	}
}

// A process that ignores the signal is killed after the grace period, and
// Stop says it did not end on the signal; one that honours it, says it did.
func TestStop(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("signals other than kill are POSIX")
	}
	for _, tc := range []struct {
		name   string
		script string
		want   bool
	}{
		{"honours the signal", "sleep 30", true},
		{"ignores the signal", "trap '' TERM; sleep 30 & wait", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", tc.script)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { _ = cmd.Wait(); close(exited) }()
			time.Sleep(100 * time.Millisecond) // let sh install its trap
			if got := Stop(cmd, exited, syscall.SIGTERM, 500*time.Millisecond); got != tc.want {
				t.Fatalf("Stop = %v, want %v", got, tc.want)
			}
			if cmd.ProcessState == nil {
				t.Fatal("process state unknown after Stop")
			}
		})
	}
}

// The stop function runs when the test ends, with a context that ends
// within the bound given.
func TestStopAtCleanup(t *testing.T) {
	var deadline time.Time
	t.Run("inner", func(t *testing.T) {
		StopAtCleanup(t, time.Minute, func(ctx context.Context) error {
			deadline, _ = ctx.Deadline()
			return nil
		})
	})
	if deadline.IsZero() || time.Until(deadline) > time.Minute {
		t.Fatalf("stop ran with deadline %v, want one within a minute", deadline)
	}
}

func TestForQueueKinds(t *testing.T) {
	var ran []bool
	ForQueueKinds(t, func(t *testing.T, sessions bool) {
		if want := QueueKind(sessions); !strings.HasSuffix(t.Name(), strings.ReplaceAll(want, " ", "_")) {
			t.Errorf("subtest %s, want one named %q", t.Name(), want)
		}
		ran = append(ran, sessions)
	})
	if len(ran) != 2 || ran[0] == ran[1] {
		t.Fatalf("ran %v, want both queue kinds", ran)
	}
}

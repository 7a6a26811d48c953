package ledger

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 24, 18, 0, 0, 0, time.UTC)

// fakeClock is a settable clock whose After channels the test fires.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	ticks chan time.Time
	calls chan time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: t0, ticks: make(chan time.Time), calls: make(chan time.Duration, 16)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.calls <- d
	return c.ticks
}

// testLockTimeout stands in for the config's value, which Open requires.
const testLockTimeout = 2 * time.Second

// openTest opens a ledger closed at the test's end; a zero LockTimeout in
// opts is testLockTimeout.
func openTest(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	if opts.LockTimeout == 0 {
		opts.LockTimeout = testLockTimeout
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

const result1 = `{"v":1,"id":"a","status":"succeeded","code":"ok"}`

func TestLifecycle(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	id := "0b6f7c1e-4a53-4f7e-9a6a-2f3c6f0e9d21"

	if r, err := s.Get(id); err != nil || r.State != Unknown {
		t.Fatalf("Get before anything = %+v, %v; want Unknown", r, err)
	}
	prev, err := s.MarkApplying(id, t0)
	if err != nil || prev.State != Unknown {
		t.Fatalf("first MarkApplying = %+v, %v; want Unknown, nil", prev, err)
	}
	if _, err := s.MarkApplying(id, t0.Add(time.Second)); !errors.Is(err, ErrInFlight) {
		t.Fatalf("MarkApplying while claimed = %v; want ErrInFlight", err)
	}
	if r, _ := s.Get(id); r.State != Applying || !r.At.Equal(t0) {
		t.Fatalf("Get while applying = %+v; want Applying at %v", r, t0)
	}

	// An abandoned attempt keeps the first attempt's time.
	s.Release(id)
	prev, err = s.MarkApplying(id, t0.Add(time.Minute))
	if err != nil || prev.State != Applying || !prev.At.Equal(t0) {
		t.Fatalf("MarkApplying after Release = %+v, %v; want Applying at %v", prev, err, t0)
	}

	if err := s.MarkDone(id, []byte(result1), t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	for range 2 { // Done holds no claim: both see the result
		prev, err = s.MarkApplying(id, t0.Add(time.Hour))
		if err != nil || prev.State != Done || string(prev.Result) != result1 {
			t.Fatalf("MarkApplying after done = %+v, %v; want Done with the result", prev, err)
		}
	}
}

func TestMarkAudited(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	const id = "0b6f7c1e-4a53-4f7e-9a6a-2f3c6f0e9d21"
	if err := s.MarkAudited(id); err != nil { // no record: nothing to do
		t.Fatal(err)
	}
	if _, err := s.MarkApplying(id, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkAudited(id); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Get(id); r.State != Applying || r.Audited {
		t.Fatalf("an applying record cannot be audited: %+v", r)
	}
	if err := s.MarkDone(id, []byte(result1), t0); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Get(id); r.Audited {
		t.Fatalf("a fresh result is not audited yet: %+v", r)
	}
	if err := s.MarkAudited(id); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTest(t, dir, Options{})
	prev, err := s.MarkApplying(id, t0)
	if err != nil || prev.State != Done || !prev.Audited || string(prev.Result) != result1 {
		t.Fatalf("after reopening: %+v, %v; want done, audited, with the result", prev, err)
	}
}

func TestForget(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	const id, done = "0b6f7c1e-4a53-4f7e-9a6a-2f3c6f0e9d21", "1c6f7c1e-4a53-4f7e-9a6a-2f3c6f0e9d22"
	if _, err := s.MarkApplying(id, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Forget(id); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Get(id); err != nil || r.State != Unknown {
		t.Fatalf("after Forget = %+v, %v; want Unknown", r, err)
	}
	// The claim is gone too, and a new attempt starts afresh.
	if prev, err := s.MarkApplying(id, t0.Add(time.Minute)); err != nil || prev.State != Unknown {
		t.Fatalf("MarkApplying after Forget = %+v, %v", prev, err)
	}
	if n, err := s.Prune(time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("prune after Forget and a new claim = %d, %v; want the one live record", n, err)
	}
	// A result is never forgotten.
	if _, err := s.MarkApplying(done, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDone(done, []byte(result1), t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Forget(done); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Get(done); r.State != Done {
		t.Fatalf("Forget dropped a result: %+v", r)
	}
}

func TestBadInput(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	for _, id := range []string{"", "a b", "a\nb", strings.Repeat("x", MaxIDLength+1)} {
		if _, err := s.MarkApplying(id, t0); err == nil {
			t.Errorf("MarkApplying(%q) succeeded; want an error", id)
		}
	}
	if _, err := s.MarkApplying("x", time.Time{}); err == nil {
		t.Error("MarkApplying with a zero time succeeded")
	}
	for _, res := range []string{"", "{", "{\"a\":\n1}"} {
		if err := s.MarkDone("x", []byte(res), t0); err == nil {
			t.Errorf("MarkDone(result %q) succeeded; want an error", res)
		}
	}
}

// The config owns the ledger's timings: Open refuses a zero instead of
// running with a value nobody chose.
func TestOpenRefusesMissingTimings(t *testing.T) {
	for name, opts := range map[string]Options{
		"no lock timeout":              {},
		"retention, no prune interval": {LockTimeout: testLockTimeout, Retention: time.Hour},
	} {
		s, err := Open(t.TempDir(), opts)
		if err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded; want an error", name)
		} else if !strings.Contains(err.Error(), "positive duration") {
			t.Errorf("%s: Open = %v; want it to ask for a positive duration", name, err)
		}
	}
}

func TestReopenKeepsRecords(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{LockTimeout: testLockTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkApplying("a", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDone("b", []byte(result1), t0); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{LockTimeout: 50 * time.Millisecond}); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second Open of a held ledger = %v; want an error naming the other process", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDone("c", []byte(result1), t0); !errors.Is(err, ErrClosed) {
		t.Fatalf("MarkDone after Close = %v; want ErrClosed", err)
	}
	s = openTest(t, dir, Options{})
	if r, _ := s.Get("a"); r.State != Applying || !r.At.Equal(t0) {
		t.Errorf("after reopen a = %+v", r)
	}
	if r, _ := s.Get("b"); r.State != Done || string(r.Result) != result1 {
		t.Errorf("after reopen b = %+v", r)
	}
}

func TestPrune(t *testing.T) {
	clk := newFakeClock()
	s := openTest(t, t.TempDir(), Options{Now: clk.Now})
	if _, err := s.MarkApplying("old", t0); err != nil {
		t.Fatal(err)
	}
	clk.Set(t0.Add(10 * time.Minute))
	if err := s.MarkDone("new", []byte(result1), clk.Now()); err != nil {
		t.Fatal(err)
	}
	// Finishing "old" later does not make it younger: age counts from the
	// first write.
	if err := s.MarkDone("old", []byte(result1), clk.Now()); err != nil {
		t.Fatal(err)
	}
	n, err := s.Prune(t0.Add(5 * time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1", n, err)
	}
	if r, _ := s.Get("old"); r.State != Unknown {
		t.Errorf("old survived the prune: %+v", r)
	}
	if r, _ := s.Get("new"); r.State != Done {
		t.Errorf("new was pruned: %+v", r)
	}
}

func TestPruneManyInChunks(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	const n = 2500
	for i := range n {
		if err := s.MarkDone(fmt.Sprintf("id-%d", i), []byte(result1), t0); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Prune(time.Now().Add(time.Hour))
	if err != nil || got != n {
		t.Fatalf("Prune = %d, %v; want %d", got, err, n)
	}
}

func TestBackgroundPruner(t *testing.T) {
	clk := newFakeClock()
	s := openTest(t, t.TempDir(), Options{Now: clk.Now, After: clk.After, Retention: 17 * time.Minute, PruneInterval: time.Minute})
	if d := <-clk.calls; d != time.Minute { // the start-up prune ran
		t.Fatalf("pruner waits %v; want the interval", d)
	}
	if err := s.MarkDone("a", []byte(result1), t0); err != nil {
		t.Fatal(err)
	}
	clk.Set(t0.Add(16 * time.Minute))
	clk.ticks <- clk.Now()
	<-clk.calls
	if r, _ := s.Get("a"); r.State != Done {
		t.Fatalf("record pruned before its retention ended: %+v", r)
	}
	clk.Set(t0.Add(18 * time.Minute))
	clk.ticks <- clk.Now()
	<-clk.calls
	if r, _ := s.Get("a"); r.State != Unknown {
		t.Fatalf("record kept after its retention ended: %+v", r)
	}
}

func TestConcurrentClaimsOneWinner(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	var wg sync.WaitGroup
	var winners, busy atomic.Int32
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prev, err := s.MarkApplying("same", t0)
			switch {
			case errors.Is(err, ErrInFlight):
				busy.Add(1)
			case err == nil && prev.State == Unknown:
				winners.Add(1)
			default:
				t.Errorf("MarkApplying = %+v, %v", prev, err)
			}
		}()
	}
	wg.Wait()
	if winners.Load() != 1 || busy.Load() != 15 {
		t.Fatalf("winners %d, in-flight refusals %d; want 1 and 15", winners.Load(), busy.Load())
	}
}

// applyDone takes id through a writeback's two records, applying then
// done, as the handler does for every request.
func applyDone(s *Store, id string) error {
	if _, err := s.MarkApplying(id, t0); err != nil {
		return err
	}
	return s.MarkDone(id, []byte(result1), t0)
}

func TestConcurrentWriters(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				if err := applyDone(s, fmt.Sprintf("w%d-%d", w, i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for w := range 8 {
		for i := range 100 {
			if r, _ := s.Get(fmt.Sprintf("w%d-%d", w, i)); r.State != Done {
				t.Fatalf("w%d-%d = %+v; want Done", w, i, r)
			}
		}
	}
}

// TestKill9 writes from a child process, kills it with SIGKILL in the middle
// of its writes, and checks that every write the child saw acknowledged is
// in the reopened ledger.
func TestKill9(t *testing.T) {
	if dir := os.Getenv("LEDGER_KILL_CHILD_DIR"); dir != "" {
		killChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$")
	cmd.Env = append(os.Environ(), "LEDGER_KILL_CHILD_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var acked []string
	for sc.Scan() && len(acked) < 200 {
		acked = append(acked, sc.Text())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if len(acked) < 200 {
		t.Fatalf("child acknowledged only %d writes before it stopped", len(acked))
	}
	s := openTest(t, dir, Options{})
	for _, line := range acked {
		state, id, _ := strings.Cut(line, " ")
		r, err := s.Get(id)
		// The child may have got further than its last acknowledgement
		// (done after applying), never less far.
		if err != nil || r.State < map[string]State{"applying": Applying, "done": Done}[state] {
			t.Fatalf("acknowledged %q but the ledger has %+v, %v", line, r, err)
		}
	}
}

func killChild(dir string) {
	s, err := Open(dir, Options{LockTimeout: testLockTimeout})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		id := fmt.Sprintf("req-%d", i)
		if _, err := s.MarkApplying(id, time.Now()); err != nil {
			os.Exit(2)
		}
		fmt.Println("applying", id)
		if i%2 == 0 {
			if err := s.MarkDone(id, []byte(result1), time.Now()); err != nil {
				os.Exit(2)
			}
			fmt.Println("done", id)
		}
	}
}

// BenchmarkApplyDone measures a request's two ledger writes (applying, then
// done) under parallel load, where group commit shares fsyncs.
func BenchmarkApplyDone(b *testing.B) {
	s, err := Open(b.TempDir(), Options{LockTimeout: testLockTimeout})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var n atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := applyDone(s, fmt.Sprintf("id-%d", n.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

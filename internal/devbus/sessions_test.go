package devbus

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/lab/testkit"
)

func sessionMsg(session string, i int) *azservicebus.Message {
	return &azservicebus.Message{MessageID: ptr(fmt.Sprintf("%s-%d", session, i)), SessionID: ptr(session), Body: []byte(fmt.Sprint(i))}
}

func TestSessionsInterleavedInOrderToDifferentReceivers(t *testing.T) {
	srv := startServer(t, QueueConfig{Name: "sq", RequiresSession: true})
	c := newClient(t, srv)
	const n = 20
	var msgs []*azservicebus.Message
	for i := range n {
		msgs = append(msgs, sessionMsg("s1", i), sessionMsg("s2", i))
	}
	send(t, c, "sq", msgs...)

	r1, err := c.AcceptNextSessionForQueue(testkit.Context(t, 5*time.Second), "sq", nil)
	if err != nil {
		t.Fatalf("accept next: %v", err)
	}
	r2, err := c.AcceptNextSessionForQueue(testkit.Context(t, 5*time.Second), "sq", nil)
	if err != nil {
		t.Fatalf("accept next: %v", err)
	}
	if r1.SessionID() == r2.SessionID() {
		t.Fatalf("both receivers got session %q", r1.SessionID())
	}
	if r1.SessionID() != "s1" {
		t.Fatalf("next available should be the session with the oldest message, got %q", r1.SessionID())
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, r := range []*azservicebus.SessionReceiver{r1, r2} {
		wg.Go(func() {
			next := 0
			for next < n {
				got, err := r.ReceiveMessages(testkit.Context(t, 5*time.Second), 3, nil)
				if err != nil {
					errs <- err
					return
				}
				for _, m := range got {
					want := fmt.Sprintf("%s-%d", r.SessionID(), next)
					if m.MessageID != want || *m.SessionID != r.SessionID() {
						errs <- fmt.Errorf("receiver of %s got %s, want %s", r.SessionID(), m.MessageID, want)
						return
					}
					next++
					if err := r.CompleteMessage(testkit.Context(t, 5*time.Second), m, nil); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if srv.Depth("sq") != 0 {
		t.Fatal("messages left")
	}
}

func TestOneReceiverPerSession(t *testing.T) {
	srv := startServer(t, QueueConfig{Name: "sq", RequiresSession: true})
	c := newClient(t, srv)
	send(t, c, "sq", sessionMsg("s1", 0))
	r1, err := c.AcceptSessionForQueue(testkit.Context(t, 5*time.Second), "sq", "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.AcceptSessionForQueue(testkit.Context(t, 5*time.Second), "sq", "s1", nil)
	if err == nil || !strings.Contains(err.Error(), "session-cannot-be-locked") {
		t.Fatalf("second receiver on a locked session: %v", err)
	}
	// Once the first lets go, the session can be taken again.
	if err := r1.Close(testkit.Context(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	r2, err := c.AcceptSessionForQueue(testkit.Context(t, 5*time.Second), "sq", "s1", nil)
	if err != nil {
		t.Fatalf("accept after release: %v", err)
	}
	m := receiveOne(t, r2, 5*time.Second)
	if m.MessageID != "s1-0" {
		t.Fatal(m.MessageID)
	}
	// A plain receiver cannot read a session queue.
	r, _ := c.NewReceiverForQueue("sq", nil)
	if _, err := r.ReceiveMessages(testkit.Context(t, 5*time.Second), 1, nil); err == nil {
		t.Fatal("a receiver without a session read a session queue")
	}
}

func TestNextAvailableWaitsAndTimesOut(t *testing.T) {
	srv := startServer(t, QueueConfig{Name: "sq", RequiresSession: true})
	c := newClient(t, srv)
	start := time.Now()
	_, err := c.AcceptNextSessionForQueue(testkit.Context(t, time.Second), "sq", nil)
	var sbErr *azservicebus.Error
	if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeTimeout {
		t.Fatalf("accept with no session: %v, want CodeTimeout", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("timeout took %s", el)
	}
	// A session that arrives while a receiver waits is handed to it.
	done := make(chan *azservicebus.SessionReceiver, 1)
	go func() {
		r, err := c.AcceptNextSessionForQueue(testkit.Context(t, 5*time.Second), "sq", nil)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	time.Sleep(100 * time.Millisecond)
	send(t, c, "sq", sessionMsg("late", 0))
	r := <-done
	if r == nil || r.SessionID() != "late" {
		t.Fatalf("waiting receiver got %v", r)
	}
}

func TestSessionStateRoundTrip(t *testing.T) {
	srv := startServer(t, QueueConfig{Name: "sq", RequiresSession: true})
	c := newClient(t, srv)
	r, err := c.AcceptSessionForQueue(testkit.Context(t, 5*time.Second), "sq", "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.GetSessionState(testkit.Context(t, 5*time.Second), nil)
	if err != nil || st != nil {
		t.Fatalf("initial state %q %v", st, err)
	}
	want := []byte("applying req-1 at 2025-01-01T00:00:00Z")
	if err := r.SetSessionState(testkit.Context(t, 5*time.Second), want, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := srv.SessionState("sq", "s1"); string(got) != string(want) {
		t.Fatalf("server state %q", got)
	}
	_ = r.Close(testkit.Context(t, 5*time.Second))
	r2, err := c.AcceptSessionForQueue(testkit.Context(t, 5*time.Second), "sq", "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r2.GetSessionState(testkit.Context(t, 5*time.Second), nil)
	if err != nil || string(got) != string(want) {
		t.Fatalf("state after re-accept %q %v", got, err)
	}
	if err := r2.SetSessionState(testkit.Context(t, 5*time.Second), nil, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := r2.GetSessionState(testkit.Context(t, 5*time.Second), nil); got != nil {
		t.Fatalf("cleared state reads %q", got)
	}
	// Only the lock holder may touch the state.
	r3, err := c.AcceptSessionForQueue(testkit.Context(t, 5*time.Second), "sq", "other", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = r3
	if sessions, _ := srv.Sessions("sq"); len(sessions) != 2 || !sessions[0].Locked {
		t.Fatalf("sessions %+v", sessions)
	}
}

func TestSessionLockRenewal(t *testing.T) {
	clock := newFakeClock()
	srv := startServerWith(t, Options{Clock: clock, Queues: []QueueConfig{{Name: "sq", RequiresSession: true, LockDuration: 30 * time.Second}}})
	c := newClient(t, srv)
	send(t, c, "sq", sessionMsg("s1", 0))
	r, err := c.AcceptSessionForQueue(testkit.Context(t, 5*time.Second), "sq", "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	first := r.LockedUntil()
	if d := first.Sub(clock.Now()); d < 29*time.Second || d > 31*time.Second {
		t.Fatalf("locked-until on accept is %s away", d)
	}
	m := receiveOne(t, r, 5*time.Second)
	for range 5 {
		clock.Advance(20 * time.Second)
		if err := r.RenewSessionLock(testkit.Context(t, 5*time.Second), nil); err != nil {
			t.Fatalf("renew session lock: %v", err)
		}
	}
	if got := r.LockedUntil().Sub(first); got < 99*time.Second || got > 101*time.Second {
		t.Fatalf("LockedUntil moved by %s", got)
	}
	if err := r.CompleteMessage(testkit.Context(t, 5*time.Second), m, nil); err != nil {
		t.Fatalf("complete after session renewals: %v", err)
	}
}

func TestSessionLockExpiryReleasesMessages(t *testing.T) {
	clock := newFakeClock()
	srv := startServerWith(t, Options{Clock: clock, Queues: []QueueConfig{{Name: "sq", RequiresSession: true, LockDuration: 30 * time.Second}}})
	c := newClient(t, srv)
	send(t, c, "sq", sessionMsg("s1", 0), sessionMsg("s1", 1))
	r, err := c.AcceptSessionForQueue(testkit.Context(t, 5*time.Second), "sq", "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := receiveOne(t, r, 5*time.Second)
	if m.MessageID != "s1-0" {
		t.Fatal(m.MessageID)
	}
	clock.Advance(30 * time.Second)
	if ss, _ := srv.Sessions("sq"); len(ss) != 1 || ss[0].Locked {
		t.Fatalf("session after its lock duration: %+v", ss)
	}
	// Another receiver gets the session, starting again from the first
	// message, whose delivery count went up.
	c2 := newClient(t, srv)
	r2, err := c2.AcceptNextSessionForQueue(testkit.Context(t, 5*time.Second), "sq", nil)
	if err != nil {
		t.Fatal(err)
	}
	m2 := receiveOne(t, r2, 5*time.Second)
	if m2.MessageID != "s1-0" || m2.DeliveryCount != 2 {
		t.Fatalf("after session lock expiry got %s count %d", m2.MessageID, m2.DeliveryCount)
	}
	var sbErr *azservicebus.Error
	if err := r.CompleteMessage(testkit.Context(t, 500*time.Millisecond), m, nil); err == nil || (errors.As(err, &sbErr) && sbErr.Code != azservicebus.CodeLockLost) {
		t.Fatalf("complete under a lost session lock: %v", err)
	}
}

func TestSessionPeekIsScopedToTheSession(t *testing.T) {
	srv := startServer(t, QueueConfig{Name: "sq", RequiresSession: true})
	c := newClient(t, srv)
	send(t, c, "sq", sessionMsg("a", 0), sessionMsg("b", 0), sessionMsg("a", 1))
	r, err := c.AcceptSessionForQueue(testkit.Context(t, 5*time.Second), "sq", "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.PeekMessages(testkit.Context(t, 5*time.Second), 10, nil)
	if err != nil || len(p) != 2 || p[0].MessageID != "a-0" || p[1].MessageID != "a-1" {
		t.Fatalf("peek in session a: %v %v", p, err)
	}
}

func TestSessionAbandonKeepsOrder(t *testing.T) {
	srv := startServer(t, QueueConfig{Name: "sq", RequiresSession: true})
	c := newClient(t, srv)
	send(t, c, "sq", sessionMsg("s", 0), sessionMsg("s", 1))
	r, err := c.AcceptSessionForQueue(testkit.Context(t, 5*time.Second), "sq", "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := receiveOne(t, r, 5*time.Second)
	if err := r.AbandonMessage(testkit.Context(t, 5*time.Second), m, nil); err != nil {
		t.Fatal(err)
	}
	m = receiveOne(t, r, 5*time.Second)
	if m.MessageID != "s-0" || m.DeliveryCount != 2 {
		t.Fatalf("after abandon got %s (count %d), want s-0 again", m.MessageID, m.DeliveryCount)
	}
}

func TestSessionQueueNeedsSessionID(t *testing.T) {
	srv := startServer(t, QueueConfig{Name: "sq", RequiresSession: true})
	c := newClient(t, srv)
	s, _ := c.NewSender("sq", nil)
	defer s.Close(testkit.Context(t, time.Second))
	err := s.SendMessage(testkit.Context(t, 5*time.Second), &azservicebus.Message{Body: []byte("x")}, nil)
	if err == nil || !strings.Contains(err.Error(), "requires sessions") {
		t.Fatalf("send without a session id: %v", err)
	}
}

func TestListSessions(t *testing.T) {
	srv := startServer(t, QueueConfig{Name: "sq", RequiresSession: true})
	c := newClient(t, srv)
	send(t, c, "sq", sessionMsg("b", 0), sessionMsg("a", 0))
	r, err := c.AcceptSessionForQueue(testkit.Context(t, 5*time.Second), "sq", "stateonly", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetSessionState(testkit.Context(t, 5*time.Second), []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	var ids []string
	pager := c.NewListSessionsForQueuePager("sq", nil)
	for pager.More() {
		page, err := pager.NextPage(testkit.Context(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, page.Sessions...)
	}
	if strings.Join(ids, ",") != "a,b,stateonly" {
		t.Fatalf("sessions %v", ids)
	}
}

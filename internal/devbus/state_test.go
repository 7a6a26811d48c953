package devbus

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/lab/testkit"
	"wbagent/internal/secret"
)

func TestStateSurvivesRestart(t *testing.T) {
	skipShort(t)
	path := filepath.Join(t.TempDir(), "devbus.json")
	key := secret.FromString("test-key")
	opts := Options{Key: key, StateFile: path, Queues: []QueueConfig{
		{Name: "q", DuplicateDetection: time.Hour},
		{Name: "sq", RequiresSession: true, LockDuration: 5 * time.Second},
	}}
	srv, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, srv)
	send(t, c, "q", &azservicebus.Message{MessageID: ptr("a"), Body: []byte("A")},
		&azservicebus.Message{MessageID: ptr("b")}, &azservicebus.Message{MessageID: ptr("c")})
	send(t, c, "sq", sessionMsg("s", 0))
	r, _ := c.NewReceiverForQueue("q", nil)
	msgs, err := r.ReceiveMessages(testkit.Context(t, 5*time.Second), 3, nil)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("receive %v %v", msgs, err)
	}
	_ = r.DeadLetterMessage(testkit.Context(t, 5*time.Second), msgs[1], &azservicebus.DeadLetterOptions{Reason: ptr("R")})
	_ = r.DeferMessage(testkit.Context(t, 5*time.Second), msgs[2], nil)
	// msgs[0] stays locked: a restart loses the lock, not the message.
	sr, err := c.AcceptSessionForQueue(testkit.Context(t, 5*time.Second), "sq", "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sr.SetSessionState(testkit.Context(t, 5*time.Second), []byte("done x"), nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("close with state: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("state file: %v", err)
	}

	// Restart with no queue definitions: they come back from the file.
	srv2, err := Start(context.Background(), Options{Key: key, StateFile: path})
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	st, _ := srv2.Stats("q")
	if st.Available != 1 || st.Deferred != 1 || st.DeadLettered != 1 {
		t.Fatalf("restored stats %+v", st)
	}
	if s, _ := srv2.SessionState("sq", "s"); string(s) != "done x" {
		t.Fatalf("restored session state %q", s)
	}
	qs := srv2.Queues()
	if len(qs) != 2 || !qs[1].RequiresSession || qs[1].LockDuration != 5*time.Second || qs[0].DuplicateDetection != time.Hour {
		t.Fatalf("restored queue settings %+v", qs)
	}
	c2 := newClient(t, srv2)
	// Duplicate detection remembers ids across the restart.
	send(t, c2, "q", &azservicebus.Message{MessageID: ptr("a")}, &azservicebus.Message{MessageID: ptr("d")})
	r2, _ := c2.NewReceiverForQueue("q", nil)
	got := receiveOne(t, r2, 5*time.Second)
	if got.MessageID != "a" || string(got.Body) != "A" || got.DeliveryCount != 2 {
		t.Fatalf("restored message %s %q count %d", got.MessageID, got.Body, got.DeliveryCount)
	}
	next := receiveOne(t, r2, 5*time.Second)
	if next.MessageID != "d" || *next.SequenceNumber <= *got.SequenceNumber {
		t.Fatalf("after restart got %s seq %d", next.MessageID, *next.SequenceNumber)
	}
}

func TestBadStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(context.Background(), Options{StateFile: path}); err == nil {
		t.Fatal("a corrupt state file was accepted")
	}
}

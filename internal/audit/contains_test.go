package audit

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func TestContains(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w := openTest(t, path, Options{})
	base := time.Date(2026, 11, 24, 18, 0, 0, 0, time.UTC)
	// Enough lines to span several 64 KiB blocks.
	for i := range 3000 {
		rec := Record{Time: base.Add(time.Duration(i) * time.Second), Event: EventResult, RequestID: fmt.Sprintf("req-%04d", i), Op: "reset", Code: "ok",
			Detail: "padding-padding-padding-padding-padding-padding-padding"}
		if err := w.Record(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		id, event string
		since     time.Time
		want      bool
	}{
		{"req-2999", EventResult, base, true},
		{"req-0000", EventResult, base, true},                 // the very first line
		{"req-1500", EventResult, base, true},                 // deep inside, across blocks
		{"req-1500", EventReplayed, base, false},              // another event
		{"req-0100", EventResult, base.Add(time.Hour), false}, // older than since
		{"req-9999", EventResult, base, false},
	}
	for _, c := range cases {
		got, err := w.Contains(c.id, c.event, c.since)
		if err != nil || got != c.want {
			t.Errorf("Contains(%s, %s, %s) = %v, %v; want %v", c.id, c.event, c.since.Format(time.TimeOnly), got, err, c.want)
		}
	}
}

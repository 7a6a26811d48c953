package audit

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// A size limit rotates the file before the write that would pass it; the
// chain continues across files, VerifySet checks them in order, a file
// taken out or reordered breaks it, and Contains finds lines in rotated
// files.
func TestRotationBySizeKeepsOneChain(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	line, _, err := encodeLine(rec(0), Genesis)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); now = now.Add(time.Millisecond); return now }
	w := openTest(t, path, Options{MaxSize: int64(3*len(line) + 10), Now: clock})
	writeN(t, w, 0, 10)
	rotated, err := RotatedFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rotated) < 3 {
		t.Fatalf("rotated files %v; want at least 3 after 10 lines of which 3 fit a file", rotated)
	}
	set := append(rotated, path)
	for _, p := range set {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > int64(3*len(line)+10)+int64(len(line)) {
			t.Errorf("%s is %d bytes, more than the limit allows", p, st.Size())
		}
	}
	reps, err := VerifySet(set, Genesis)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, r := range reps {
		if !r.OK() {
			t.Fatalf("%s broken at %d: %s", r.Path, r.Broken, r.Reason)
		}
		total += r.Lines
	}
	if total != 10 || len(reps) != len(set) {
		t.Fatalf("%d lines in %d files verified; want 10 in %d", total, len(reps), len(set))
	}
	// A file alone does not start the chain, a missing one breaks it.
	if reps, _ := VerifySet(set[1:], Genesis); reps[0].OK() || !strings.Contains(reps[0].Reason, "rotated") {
		t.Errorf("set without its first file: %+v", reps)
	}
	if reps, _ := VerifySet(append([]string{set[0]}, set[2:]...), Genesis); reps[1].OK() {
		t.Errorf("set without its second file verified: %+v", reps)
	}
	// Contains looks into rotated files while lines are recent enough.
	if ok, err := w.Contains(rec(0).RequestID, EventResult, t0.Add(-time.Hour)); err != nil || !ok {
		t.Errorf("Contains of the first line: %v, %v", ok, err)
	}
	if ok, err := w.Contains(rec(0).RequestID, EventResult, t0.Add(time.Hour)); err != nil || ok {
		t.Errorf("Contains with a later since: %v, %v", ok, err)
	}
	// A reopened writer continues the chain of the current file.
	w.Close()
	w2 := openTest(t, path, Options{MaxSize: int64(3*len(line) + 10), Now: clock})
	writeN(t, w2, 10, 4)
	rotated, _ = RotatedFiles(path)
	reps, err = VerifySet(append(rotated, path), Genesis)
	if err != nil {
		t.Fatal(err)
	}
	total = 0
	for _, r := range reps {
		if !r.OK() {
			t.Fatalf("after reopening: %s broken at %d: %s", r.Path, r.Broken, r.Reason)
		}
		total += r.Lines
	}
	if total != 14 {
		t.Fatalf("%d lines after reopening, want 14", total)
	}
}

func TestRotationByAge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	now := t0
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	w := openTest(t, path, Options{MaxAge: time.Hour, Now: clock})
	r := rec(0)
	r.Time = time.Time{}
	for range 3 {
		if err := w.Record(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	if rotated, _ := RotatedFiles(path); len(rotated) != 0 {
		t.Fatalf("rotated within the hour: %v", rotated)
	}
	mu.Lock()
	now = now.Add(61 * time.Minute)
	mu.Unlock()
	if err := w.Record(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	rotated, _ := RotatedFiles(path)
	if len(rotated) != 1 || !strings.HasSuffix(rotated[0], ".20261124T190100.000Z") {
		t.Fatalf("rotated files %v; want one, named by the time of rotation", rotated)
	}
	if reps, err := VerifySet(append(rotated, path), Genesis); err != nil || !reps[0].OK() || !reps[1].OK() || reps[0].Lines != 3 || reps[1].Lines != 1 {
		t.Fatalf("verify: %+v %v", reps, err)
	}
}

func TestRotatedFilesIgnoresOthers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	for _, n := range []string{"audit.jsonl", "audit.jsonl.torn", "audit.jsonl.probe", "audit.jsonl.20261124T180000.000Z",
		"audit.jsonl.20261124T180000.000Z-2", "audit.jsonl.2026", "other.jsonl.20261124T180000.000Z", "audit.jsonl.20261124T170000.000Z"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := RotatedFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"audit.jsonl.20261124T170000.000Z", "audit.jsonl.20261124T180000.000Z", "audit.jsonl.20261124T180000.000Z-2"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if filepath.Base(got[i]) != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

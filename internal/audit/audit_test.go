package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var t0 = time.Date(2026, 11, 24, 18, 0, 0, 0, time.UTC)

func rec(i int) Record {
	return Record{
		Time:       t0.Add(time.Duration(i) * time.Second),
		Event:      EventResult,
		RequestID:  fmt.Sprintf("0b6f7c1e-4a53-4f7e-9a6a-%012d", i),
		Op:         "reset",
		Target:     map[string]string{"objectGUID": "3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4"},
		DN:         "CN=Alice <Ops>,OU=Staff,DC=corp,DC=example",
		ObjectGUID: "3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4",
		Actor:      &Actor{ID: "helpdesk@contoso.example", Kind: "admin", IP: "203.0.113.7"},
		SenderKID:  "9b1f3c2a7d4e5f60",
		Code:       "ok",
		DC:         "dc1.corp.example",
		Attempts:   1,
		DurationMs: 41,
		Agent:      "dc-site-a-1",
	}
}

func openTest(t *testing.T, path string, opts Options) *Writer {
	t.Helper()
	w, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func writeN(t *testing.T, w *Writer, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := w.Record(context.Background(), rec(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func verifyFile(t *testing.T, path string) Report {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := Verify(f)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestRecordAndVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "audit.jsonl")
	w := openTest(t, path, Options{})
	writeN(t, w, 0, 5)
	rep := verifyFile(t, path)
	if !rep.OK() || rep.Lines != 5 {
		t.Fatalf("Verify = %+v; want 5 good lines", rep)
	}
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if !strings.HasSuffix(lines[4], `"hash":"`+rep.Last+`"}`) {
		t.Fatalf("Report.Last %s is not the last line's hash: %s", rep.Last, lines[4])
	}
	if !strings.Contains(lines[0], `"prev":"`+Genesis+`"`) {
		t.Fatalf("first line does not start from Genesis: %s", lines[0])
	}
	// Field order and readability are part of the format.
	want := `{"time":"2026-11-24T18:00:00Z","event":"result","requestId":"0b6f7c1e-4a53-4f7e-9a6a-000000000000","op":"reset","target":{"objectGUID":"3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4"},"dn":"CN=Alice <Ops>,OU=Staff,DC=corp,DC=example","objectGUID":"3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4","actor":{"id":"helpdesk@contoso.example","kind":"admin","ip":"203.0.113.7"},"senderKid":"9b1f3c2a7d4e5f60","code":"ok","dc":"dc1.corp.example","attempts":1,"durationMs":41,"agent":"dc-site-a-1","prev":"` + Genesis + `","hash":"`
	if !strings.HasPrefix(lines[0], want) {
		t.Fatalf("line 1 =\n%s\nwant prefix\n%s", lines[0], want)
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w := openTest(t, path, Options{})
	writeN(t, w, 0, 5)
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")[:5]
	join := func(ls ...string) string { return strings.Join(ls, "") }
	tests := []struct {
		name   string
		file   string
		broken int
		reason string
	}{
		{"intact", join(lines...), 0, ""},
		{"edited code", join(lines[0], lines[1], strings.Replace(lines[2], `"code":"ok"`, `"code":"no"`, 1), lines[3], lines[4]), 3, "changed"},
		{"edited and rehashed", join(lines[0], lines[1], rehashed(t, strings.Replace(lines[2], `"code":"ok"`, `"code":"no"`, 1)), lines[3], lines[4]), 4, "removed, inserted or reordered"},
		{"line removed", join(lines[0], lines[1], lines[3], lines[4]), 3, "removed, inserted or reordered"},
		{"lines swapped", join(lines[0], lines[2], lines[1], lines[3], lines[4]), 2, "removed, inserted or reordered"},
		{"head removed", join(lines[1:]...), 1, "genesis"},
		{"torn tail", join(lines[0], lines[1], lines[2][:40]), 3, "no newline"},
		{"empty line", join(lines[0], "\n", lines[1]), 2, "empty"},
		{"garbage", join(lines[0], "hello\n"), 2, "hash"},
		{"second hash member", join(lines[0], strings.Replace(lines[1], `"code":"ok"`, `"hash":"x","code":"ok"`, 1)), 2, "second"},
		{"not json", join(lines[0], `{nope,"hash":"`+strings.Repeat("a", 64)+`"}`+"\n"), 2, "JSON"},
		{"too long", join(lines[0], strings.Repeat("x", MaxLineBytes+10)+"\n"), 2, "longer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := Verify(strings.NewReader(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Broken != tt.broken || !strings.Contains(rep.Reason, tt.reason) {
				t.Fatalf("Verify = %+v; want broken line %d with reason containing %q", rep, tt.broken, tt.reason)
			}
			if tt.broken > 0 && rep.Lines != tt.broken-1 {
				t.Fatalf("Verify counted %d good lines before line %d", rep.Lines, tt.broken)
			}
		})
	}
}

// rehashed recomputes an edited line's own hash, as a forger would.
func rehashed(t *testing.T, line string) string {
	line = strings.TrimSuffix(line, "\n")
	body := line[:len(line)-hashFieldLen] + "}"
	var r Record
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	out, _, err := encodeLine(r, r.Prev)
	if err != nil {
		t.Fatal(err)
	}
	return string(out) + "\n"
}

func TestVerifyEmpty(t *testing.T) {
	rep, err := Verify(strings.NewReader(""))
	if err != nil || !rep.OK() || rep.Lines != 0 || rep.Last != Genesis {
		t.Fatalf("Verify(empty) = %+v, %v", rep, err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestVerifyReadError(t *testing.T) {
	if _, err := Verify(failingReader{}); err == nil {
		t.Fatal("Verify of a failing reader returned no error")
	}
}

// writtenFile returns the path of a closed audit file holding n good
// lines, for the tests of what Open makes of a file left behind.
func writtenFile(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w := openTest(t, path, Options{})
	writeN(t, w, 0, n)
	w.Close()
	return path
}

func TestReopenContinuesChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, w, 0, 3)
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second Open of a file in use = %v; want an error naming the other writer", err)
	}
	w.Close()
	if err := w.Record(context.Background(), rec(9)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Record after Close = %v; want ErrClosed", err)
	}
	wantContinued(t, openTest(t, path, Options{}), path, "reopen")
}

// wantContinued writes two lines with w, opened again on the file at path
// that holds three, and wants all five to verify: the chain went on
// across the Open. after names what came before, for the failure.
func wantContinued(t *testing.T, w *Writer, path, after string) {
	t.Helper()
	writeN(t, w, 3, 2)
	if rep := verifyFile(t, path); !rep.OK() || rep.Lines != 5 {
		t.Fatalf("Verify after %s = %+v; want 5 good lines", after, rep)
	}
}

func TestTornTailMovedAside(t *testing.T) {
	path := writtenFile(t, 3)
	torn := `{"time":"2026-11-24T18:00:09Z","event":"res`
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(torn)
	f.Close()
	if rep := verifyFile(t, path); rep.Broken != 4 {
		t.Fatalf("Verify with a torn tail = %+v; want line 4 broken", rep)
	}

	w := openTest(t, path, Options{})
	got, err := os.ReadFile(path + ".torn")
	if err != nil || string(got) != torn+"\n" {
		t.Fatalf("%s.torn = %q, %v; want the torn bytes", path, got, err)
	}
	wantContinued(t, w, path, "recovery")
}

func TestOpenRefusesDamagedLastLine(t *testing.T) {
	path := writtenFile(t, 2)
	data, _ := os.ReadFile(path)
	os.WriteFile(path, bytes.Replace(data, []byte(`"durationMs":41,"agent":"dc-site-a-1","prev":"`+Genesis), []byte(`"durationMs":42,"agent":"dc-site-a-1","prev":"`+Genesis), 1), 0o640)
	// Line 1 changed but the last line is intact: Open continues (Verify
	// reports line 1); then damage the last line too.
	w2, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open with an intact last line: %v", err)
	}
	w2.Close()
	data, _ = os.ReadFile(path)
	os.WriteFile(path, bytes.Replace(data, []byte(`"code":"ok","dc":"dc1.corp.example","attempts":1,"durationMs":41`), []byte(`"code":"ok","dc":"dc9.corp.example","attempts":1,"durationMs":41`), 1), 0o640)
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "audit verify") {
		t.Fatalf("Open with a damaged last line = %v; want an error pointing to audit verify", err)
	}
}

func TestConcurrentRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w := openTest(t, path, Options{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if err := w.Record(context.Background(), rec(g*1000+i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if rep := verifyFile(t, path); !rep.OK() || rep.Lines != 400 {
		t.Fatalf("Verify = %+v; want 400 good lines", rep)
	}
}

func TestClockFillsTimeAndFieldsAreBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w := openTest(t, path, Options{Now: func() time.Time { return t0.In(time.FixedZone("x", 3600)) }})
	r := Record{Event: EventDeadLettered, RequestID: strings.Repeat("é", 4000), Code: "invalid_request", Target: map[string]string{"userPrincipalName": strings.Repeat("a", 70000)}}
	if err := w.Record(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if !bytes.Contains(data, []byte(`"time":"2026-11-24T18:00:00Z"`)) {
		t.Fatalf("time not filled from the clock in UTC: %s", data[:80])
	}
	if len(data) > 3*maxField+1000 {
		t.Fatalf("line is %d bytes; long fields were not cut", len(data))
	}
	if rep := verifyFile(t, path); !rep.OK() {
		t.Fatalf("Verify = %+v", rep)
	}
}

type recordingSink struct {
	mu   sync.Mutex
	got  []Record
	fail bool
}

func (s *recordingSink) Write(r Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, r)
	if s.fail {
		return errors.New("sink down")
	}
	return nil
}

func (s *recordingSink) Close() error { return nil }

func TestSinksSeeDurableRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	sink := &recordingSink{fail: true}
	w := openTest(t, path, Options{Sinks: []Sink{sink}})
	writeN(t, w, 0, 2) // a failing sink does not fail Record
	w.Close()          // sinks run after Record returns; Close waits for them
	rep := verifyFile(t, path)
	if len(sink.got) != 2 || sink.got[1].Hash != rep.Last || sink.got[1].Prev != sink.got[0].Hash {
		t.Fatalf("sink saw %+v; want both records with their chain hashes", sink.got)
	}
}

func TestRecordHonoursContext(t *testing.T) {
	w := openTest(t, filepath.Join(t.TempDir(), "audit.jsonl"), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Record(ctx, rec(0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Record with a cancelled context = %v", err)
	}
}

func TestEventIDs(t *testing.T) {
	ops := []string{"reset", "change", "unlock", ""}
	events := []string{EventResult, EventReplayed, EventAbandoned, EventDeadLettered}
	seen := map[uint32]string{}
	for _, op := range ops {
		for _, ev := range events {
			for _, code := range append(codes, "something_new") {
				id := EventID(op, ev, code)
				key := op + "/" + ev + "/" + code
				if prev, dup := seen[id]; dup {
					t.Fatalf("%s and %s share event id %d", prev, key, id)
				}
				seen[id] = key
				if id < 31001 || id > 34999 {
					t.Fatalf("%s has id %d outside 31001–34999", key, id)
				}
			}
		}
	}
	for _, tt := range []struct {
		op, event, code string
		id              uint32
		level           Level
	}{
		{"reset", EventResult, "ok", 31001, Information},
		{"change", EventResult, "password_policy", 32002, Warning},
		{"reset", EventReplayed, "user_not_found", 31106, Warning},
		{"unlock", EventAbandoned, "directory_unavailable", 33213, Warning},
		{"", EventDeadLettered, "unauthenticated", 34316, Error},
		{"bogus", EventDeadLettered, "malformed", 34315, Warning},
		{"reset", "bogus", "internal_error", 31914, Error},
		{"change", EventResult, "bogus", 32099, Error},
	} {
		if id := EventID(tt.op, tt.event, tt.code); id != tt.id {
			t.Errorf("EventID(%q, %q, %q) = %d; want %d", tt.op, tt.event, tt.code, id, tt.id)
		}
		if l := EventLevel(tt.code); l != tt.level {
			t.Errorf("EventLevel(%q) = %v; want %v", tt.code, l, tt.level)
		}
	}
}

// TestEventIDTableGolden keeps the README's table (testdata/eventids.md,
// which the README copies) in step with the code. Run with -update after a
// deliberate change.
func TestEventIDTableGolden(t *testing.T) {
	golden := filepath.Join("testdata", "eventids.md")
	got := EventIDTable()
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("EventIDTable differs from %s (run go test -update if the change is intended):\n%s", golden, got)
	}
}

func TestEventMessage(t *testing.T) {
	r := rec(1)
	r.Hash = strings.Repeat("ab", 32)
	msg := EventMessage(r)
	for _, want := range []string{"wbagent: reset ok (result)", "Request: " + r.RequestID, "Target: objectGUID=3ee39ba2", "Actor: helpdesk@contoso.example (admin, 203.0.113.7)", "Domain controller: dc1.corp.example", "Audit line hash: " + r.Hash} {
		if !strings.Contains(msg, want) {
			t.Errorf("EventMessage lacks %q:\n%s", want, msg)
		}
	}
}

func FuzzVerify(f *testing.F) {
	l, _, _ := encodeLine(rec(0), Genesis)
	f.Add(append(l, '\n'))
	f.Add([]byte(`{"prev":"` + Genesis + `","hash":"` + Genesis + `"}` + "\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		rep, err := Verify(bytes.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() && rep.Reason == "" {
			t.Fatalf("broken line %d without a reason", rep.Broken)
		}
	})
}

// BenchmarkRecordParallel measures Record under concurrent load, where
// lines share fsyncs.
func BenchmarkRecordParallel(b *testing.B) {
	w, err := Open(filepath.Join(b.TempDir(), "audit.jsonl"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := w.Record(context.Background(), rec(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

package ledger

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func testSeal(t testing.TB, kids ...string) *SessionSeal {
	t.Helper()
	var keys []SessionKey
	for i, kid := range kids {
		keys = append(keys, SessionKey{KID: kid, Key: bytes.Repeat([]byte{byte(i + 1)}, 32)})
	}
	s, err := NewSessionSeal(keys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const kidA, kidB = "00112233445566aa", "00112233445566bb"

var bind = SessionBinding{Queue: "Requests", SessionID: "guid:3ee39ba2"}

func TestSealedSessionStateRoundTrip(t *testing.T) {
	s := testSeal(t, kidA, kidB)
	st := applyingAndDone()
	b, err := s.Encode(&st, bind)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if lines[0] != SealedStateHeader || len(lines) != 3 || !strings.HasPrefix(lines[1], kidA+".") ||
		!strings.Contains(lines[1], ","+kidB+".") || !strings.HasSuffix(lines[2], " done b "+result1) {
		t.Fatalf("encoded:\n%s", b)
	}
	got, refused := s.Decode(b, bind)
	if len(refused) != 0 || !reflect.DeepEqual(got.Records, st.Records) {
		t.Fatalf("decoded %+v, refused %v", got.Records, refused)
	}
	// Queue names compare without case, as Service Bus names do.
	if _, refused := s.Decode(b, SessionBinding{Queue: "requests", SessionID: bind.SessionID}); len(refused) != 0 {
		t.Fatalf("refused with the queue name in another case: %v", refused)
	}
	// An agent holding only one of the keys verifies too.
	if got, refused := testSeal(t, kidA).Decode(b, bind); len(refused) != 0 || len(got.Records) != 2 {
		t.Fatalf("one key: %+v, %v", got.Records, refused)
	}
}

func TestSealedSessionStateRefusals(t *testing.T) {
	s := testSeal(t, kidA)
	st := applyingAndDone()
	good, err := s.Encode(&st, bind)
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := st.Encode()
	cases := map[string]struct {
		in      []byte
		seal    *SessionSeal
		bind    SessionBinding
		refused []string // ids
		kept    int
	}{
		"other session": {good, s, SessionBinding{Queue: bind.Queue, SessionID: "guid:other"}, []string{"a", "b"}, 0},
		"other queue":   {good, s, SessionBinding{Queue: "other", SessionID: bind.SessionID}, []string{"a", "b"}, 0},
		"other key":     {good, testSeal(t, kidB), bind, []string{"a", "b"}, 0},
		"same kid, other key": {good, func() *SessionSeal {
			o, _ := NewSessionSeal([]SessionKey{{KID: kidA, Key: bytes.Repeat([]byte{9}, 32)}})
			return o
		}(), bind, []string{"a", "b"}, 0},
		"version 1":        {v1, s, bind, []string{"a", "b"}, 0},
		"bare record":      {[]byte("done b " + result1 + "\n"), s, bind, []string{"b"}, 0},
		"altered time":     {bytes.Replace(good, []byte("18:00:00Z"), []byte("17:00:00Z"), 1), s, bind, []string{"a"}, 1},
		"altered result":   {bytes.Replace(good, []byte(`"code":"ok"`), []byte(`"code":"user_not_found"`), 1), s, bind, []string{"b"}, 1},
		"no MAC on a line": {append(append([]byte(nil), good...), "applying c at 2026-11-24T18:00:00Z\n"...), s, bind, []string{"c"}, 2},
		"unknown version":  {[]byte("wbagent-session-state 3\nx\n"), s, bind, []string{""}, 0},
		"garbage":          {[]byte("\x00\x01garbage"), s, bind, []string{""}, 0},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got, refused := c.seal.Decode(c.in, c.bind)
			var ids []string
			for _, r := range refused {
				ids = append(ids, r.ID)
				if r.Reason == "" {
					t.Errorf("refused %q without a reason", r.ID)
				}
			}
			if !reflect.DeepEqual(ids, c.refused) || len(got.Records) != c.kept {
				t.Fatalf("refused %v (%v), kept %d; want %v and %d", ids, refused, len(got.Records), c.refused, c.kept)
			}
		})
	}
}

func TestNewSessionSealRefusesBadKeys(t *testing.T) {
	for name, keys := range map[string][]SessionKey{
		"none":      nil,
		"short key": {{KID: kidA, Key: make([]byte, 16)}},
		"bad kid":   {{KID: "KID", Key: make([]byte, 32)}},
		"twice":     {{KID: kidA, Key: make([]byte, 32)}, {KID: kidA, Key: make([]byte, 32)}},
	} {
		if _, err := NewSessionSeal(keys); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzSealedSessionState(f *testing.F) {
	s := testSeal(f, kidA)
	var st SessionState
	st.Put(Record{ID: "a", State: Applying, At: t0})
	good, _ := s.Encode(&st, bind)
	f.Add(good)
	f.Add([]byte("wbagent-session-state 2\n" + kidA + ".AAAA done x {}\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, _ := s.Decode(in, bind)
		// Whatever survives was sealed by s: it encodes and decodes again.
		enc, err := s.Encode(got, bind)
		if err != nil {
			return
		}
		again, refused := s.Decode(enc, bind)
		if len(refused) != 0 || !reflect.DeepEqual(again.Records, got.Records) {
			t.Fatalf("re-decoded %+v (%v), want %+v", again.Records, refused, got.Records)
		}
	})
}

package ledger

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// applyingAndDone is a session state of two records: "a" being applied
// and "b" done with result1.
func applyingAndDone() SessionState {
	var s SessionState
	s.Put(Record{ID: "a", State: Applying, At: t0})
	s.Put(Record{ID: "b", State: Done, Result: []byte(result1)})
	return s
}

func TestSessionStateRoundTrip(t *testing.T) {
	s := applyingAndDone()
	s.Put(Record{ID: "a", State: Done, Result: []byte(`{"code":"ok"}`)}) // a moves to newest
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := SessionStateHeader + "\n" +
		"done b " + result1 + "\n" +
		`done a {"code":"ok"}` + "\n"
	if string(b) != want {
		t.Fatalf("Encode =\n%s\nwant\n%s", b, want)
	}
	got, err := DecodeSessionState(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Records, s.Records) {
		t.Fatalf("decoded %+v; want %+v", got.Records, s.Records)
	}
	if r, ok := got.Find("a"); !ok || string(r.Result) != `{"code":"ok"}` {
		t.Fatalf("Find(a) = %+v, %v", r, ok)
	}
	if _, ok := got.Find("zz"); ok {
		t.Fatal("Find of an unknown id succeeded")
	}
}

func TestSessionStateApplyingText(t *testing.T) {
	var s SessionState
	s.Put(Record{ID: "0b6f7c1e-4a53-4f7e-9a6a-2f3c6f0e9d21", State: Applying, At: t0.Add(1500 * time.Millisecond)})
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if want := SessionStateHeader + "\napplying 0b6f7c1e-4a53-4f7e-9a6a-2f3c6f0e9d21 at 2026-11-24T18:00:01.5Z\n"; string(b) != want {
		t.Fatalf("Encode = %q; want %q", b, want)
	}
}

func TestSessionStateBounds(t *testing.T) {
	var s SessionState
	for i := range MaxSessionRecords + 5 {
		s.Put(Record{ID: fmt.Sprint(i), State: Applying, At: t0})
	}
	if len(s.Records) != MaxSessionRecords || s.Records[0].ID != "5" {
		t.Fatalf("after %d puts: %d records, oldest %s; want %d, oldest 5", MaxSessionRecords+5, len(s.Records), s.Records[0].ID, MaxSessionRecords)
	}

	// Large results: the oldest go until the state fits.
	big := `{"detail":"` + strings.Repeat("x", 5000) + `"}`
	s = SessionState{}
	for i := range 6 {
		s.Put(Record{ID: fmt.Sprint(i), State: Done, Result: []byte(big)})
	}
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxSessionStateBytes || len(s.Records) != 3 || s.Records[2].ID != "5" {
		t.Fatalf("encoded %d bytes with %d records (newest %s); want <= %d bytes, the 3 newest", len(b), len(s.Records), s.Records[len(s.Records)-1].ID, MaxSessionStateBytes)
	}

	huge := `{"detail":"` + strings.Repeat("x", MaxSessionStateBytes) + `"}`
	s.Put(Record{ID: "huge", State: Done, Result: []byte(huge)})
	if _, err := s.Encode(); err == nil {
		t.Fatal("Encode of a record larger than the bound succeeded")
	}
}

func TestDecodeSessionState(t *testing.T) {
	tests := []struct {
		name, in string
		want     []Record // nil: an error is wanted
	}{
		{"empty", "", []Record{}},
		{"blank", " \n", []Record{}},
		{"bare protocol record", "applying x at 2026-11-24T18:00:00Z", []Record{{ID: "x", State: Applying, At: t0}}},
		{"bare done", `done x {"a":1}`, []Record{{ID: "x", State: Done, Result: []byte(`{"a":1}`)}}},
		{"crlf", SessionStateHeader + "\r\napplying x at 2026-11-24T18:00:00Z\r\n", []Record{{ID: "x", State: Applying, At: t0}}},
		{"repeated id", "applying x at 2026-11-24T18:00:00Z\ndone x {}", []Record{{ID: "x", State: Done, Result: []byte(`{}`)}}},
		{"header only", SessionStateHeader + "\n", []Record{}},
		{"unknown word", "started x at 2026-11-24T18:00:00Z", nil},
		{"no at", "applying x 2026-11-24T18:00:00Z", nil},
		{"bad time", "applying x at yesterday", nil},
		{"no id", "applying  at 2026-11-24T18:00:00Z", nil},
		{"done bad json", "done x {", nil},
		{"done no result", "done x", nil},
		{"blank line inside", SessionStateHeader + "\n\napplying x at 2026-11-24T18:00:00Z\n", nil},
		{"binary", "\x00\xff\xfe", nil},
		{"too large", strings.Repeat("a", maxDecodeBytes+1), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeSessionState([]byte(tt.in))
			if tt.want == nil {
				if err == nil {
					t.Fatalf("decoded %+v; want an error", got.Records)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Records) != len(tt.want) || (len(tt.want) > 0 && !reflect.DeepEqual(got.Records, tt.want)) {
				t.Fatalf("decoded %+v; want %+v", got.Records, tt.want)
			}
		})
	}
}

func TestDecodeSessionStateNewerVersion(t *testing.T) {
	_, err := DecodeSessionState([]byte("wbagent-session-state 2\nwhatever\n"))
	if !errors.Is(err, ErrSessionStateVersion) {
		t.Fatalf("err = %v; want ErrSessionStateVersion", err)
	}
}

func FuzzDecodeSessionState(f *testing.F) {
	f.Add([]byte(SessionStateHeader + "\napplying x at 2026-11-24T18:00:00Z\ndone y {\"a\":[1,2]}\n"))
	f.Add([]byte("done y null"))
	f.Add([]byte("wbagent-session-state 9"))
	f.Add([]byte("applying x at 2026-11-24T18:00:00.123456789+02:00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := DecodeSessionState(in)
		if err != nil {
			return
		}
		if len(s.Records) > MaxSessionRecords {
			t.Fatalf("decoded %d records; the bound is %d", len(s.Records), MaxSessionRecords)
		}
		// Whatever decodes re-encodes (within the size bound) and decodes
		// to the same records.
		enc, err := s.Encode()
		if err != nil {
			return
		}
		again, err := DecodeSessionState(enc)
		if err != nil {
			t.Fatalf("re-decoding %q: %v", enc, err)
		}
		if len(again.Records) != len(s.Records) {
			t.Fatalf("round trip changed the record count: %d -> %d", len(s.Records), len(again.Records))
		}
		for i := range s.Records {
			a, b := s.Records[i], again.Records[i]
			if a.ID != b.ID || a.State != b.State || !a.At.Equal(b.At) || string(a.Result) != string(b.Result) {
				t.Fatalf("round trip changed record %d: %+v -> %+v", i, a, b)
			}
		}
	})
}

package amqp

import (
	"bytes"
	"testing"
)

// FuzzParseFrame drives the frame decoder with arbitrary bytes. It must
// never panic, every failure must be a decode error, and whatever decodes
// must re-encode to bytes that decode to the same encoding again (so the
// broker can echo what it parsed). The seeds run in plain `go test`.
func FuzzParseFrame(f *testing.F) {
	for _, fr := range samplePerformatives() {
		b, err := AppendFrame(nil, fr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte{0, 0, 0, 8, 2, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 12, 2, 0, 0, 0, 0, 0x53, 0x10, 0xf0})
	f.Add([]byte("AMQP\x00\x01\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := ParseFrame(data)
		if err != nil {
			return
		}
		enc, err := AppendFrame(nil, fr)
		if err != nil {
			t.Fatalf("decoded frame does not encode: %v", err)
		}
		fr2, err := ParseFrame(enc)
		if err != nil {
			t.Fatalf("re-encoded frame does not decode: %v\n%x", err, enc)
		}
		enc2, err := AppendFrame(nil, fr2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%x\n%x", enc, enc2)
		}
	})
}

// FuzzUnmarshal drives the value decoder alone, where most of the parsing
// happens, with the same stability property.
func FuzzUnmarshal(f *testing.F) {
	for _, fr := range samplePerformatives() {
		if fr.Body == nil {
			continue
		}
		b, err := Marshal(fr.Body.Described())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xf0, 0, 0, 0, 5, 0, 0, 0, 2, 0x40})
	f.Add([]byte{0xe0, 4, 2, 0x00, 0xa3, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Unmarshal(data)
		if err != nil {
			return
		}
		enc, err := Marshal(v)
		if err != nil {
			t.Fatalf("decoded %#v does not encode: %v", v, err)
		}
		v2, err := Unmarshal(enc)
		if err != nil {
			t.Fatalf("re-encoding does not decode: %v\n%x", err, enc)
		}
		enc2, err := Marshal(v2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable: %v\n%x\n%x", err, enc, enc2)
		}
	})
}

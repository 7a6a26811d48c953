package amqp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
)

func u32(v uint32) *uint32 { return &v }
func u16(v uint16) *uint16 { return &v }
func u8(v uint8) *uint8    { return &v }

// samplePerformatives covers every frame body with its fields filled, as
// the broker and the Service Bus SDK use them.
func samplePerformatives() []Frame {
	filter := map[Symbol]any{
		"com.microsoft:session-filter": Described{Descriptor: uint64(0x00000137000000C), Value: "s-1"},
	}
	return []Frame{
		{Type: FrameSASL, Body: &SASLMechanisms{Mechanisms: []Symbol{"ANONYMOUS", "PLAIN"}}},
		{Type: FrameSASL, Body: &SASLInit{Mechanism: "ANONYMOUS", InitialResponse: []byte("x"), Hostname: "h"}},
		{Type: FrameSASL, Body: &SASLChallenge{Challenge: []byte{1}}},
		{Type: FrameSASL, Body: &SASLResponse{Response: []byte{2}}},
		{Type: FrameSASL, Body: &SASLOutcome{Code: SASLOK}},
		{Body: &Open{ContainerID: "c", Hostname: "127.0.0.1:5672", MaxFrameSize: 65536, ChannelMax: 65535,
			IdleTimeout: 30 * time.Second, OfferedCapabilities: []Symbol{"a"},
			Properties: map[Symbol]any{"product": "devbus", "n": int64(-3)}}},
		{Channel: 3, Body: &Begin{RemoteChannel: u16(3), NextOutgoingID: 1, IncomingWindow: 5000, OutgoingWindow: 5000, HandleMax: 255}},
		{Channel: 3, Body: &Attach{Name: "link", Handle: 7, Role: RoleReceiver, SndSettleMode: u8(SenderSettleMixed),
			RcvSettleMode: u8(ReceiverSettleSecond),
			Source:        &Source{Terminus: Terminus{Address: "q"}, Filter: filter, Outcomes: []Symbol{"amqp:accepted:list"}},
			Target:        &Target{Terminus: Terminus{Address: "reply-1"}}, InitialDeliveryCount: u32(0), MaxMessageSize: 1 << 20,
			Properties: map[Symbol]any{"com.microsoft:timeout": uint32(5000), "com.microsoft:locked-until-utc": int64(638000000000000000)}}},
		{Body: &Attach{Name: "sender", Handle: 0, Role: RoleSender}},
		{Body: &Flow{NextIncomingID: u32(4), IncomingWindow: 10, NextOutgoingID: 2, OutgoingWindow: 3, Handle: u32(1),
			DeliveryCount: u32(9), LinkCredit: u32(100), Drain: true, Echo: true}},
		{Body: &Transfer{Handle: 1, DeliveryID: u32(5), DeliveryTag: bytes.Repeat([]byte{9}, 16), MessageFormat: u32(0x80013700),
			More: true, State: &Accepted{}}, Payload: []byte("payload")},
		{Body: &Disposition{Role: RoleReceiver, First: 1, Last: u32(3), Settled: true,
			State: &Rejected{Error: &Error{Condition: "com.microsoft:dead-letter",
				Info: map[Symbol]any{"DeadLetterReason": "r", "DeadLetterErrorDescription": "d"}}}}},
		{Body: &Disposition{Role: RoleSender, First: 2, State: &Modified{DeliveryFailed: true, UndeliverableHere: true,
			MessageAnnotations: map[Symbol]any{"k": "v"}}}},
		{Body: &Disposition{Role: RoleSender, First: 2, State: &Released{}}},
		{Body: &Disposition{Role: RoleSender, First: 2, State: &Received{SectionNumber: 1, SectionOffset: 2}}},
		{Body: &Detach{Handle: 1, Closed: true, Error: &Error{Condition: ErrDetachForced, Description: "forced"}}},
		{Body: &End{}},
		{Body: &Close{Error: &Error{Condition: ErrDecodeError, Description: "bad"}}},
		{Channel: 1},
	}
}

func TestFrameRoundTrip(t *testing.T) {
	for _, fr := range samplePerformatives() {
		b, err := AppendFrame(nil, fr)
		if err != nil {
			t.Fatalf("encode %T: %v", fr.Body, err)
		}
		got, err := ParseFrame(b)
		if err != nil {
			t.Fatalf("parse %T: %v (%x)", fr.Body, err, b)
		}
		if !reflect.DeepEqual(got, fr) {
			t.Errorf("round trip of %T:\n got  %#v\n want %#v", fr.Body, got, fr)
		}
		got2, err := ReadFrame(bytes.NewReader(b), math.MaxUint32)
		if err != nil || !reflect.DeepEqual(got2, fr) {
			t.Errorf("ReadFrame of %T: %v", fr.Body, err)
		}
	}
}

// TestKnownEncodings pins encodings written out by hand from the
// specification, so encoder and decoder cannot agree on a shared mistake.
func TestKnownEncodings(t *testing.T) {
	cases := []struct {
		v   any
		hex string
	}{
		{nil, "40"},
		{true, "41"},
		{uint32(0), "43"},
		{uint32(7), "5207"},
		{uint32(256), "7000000100"},
		{uint64(0x10), "5310"},
		{int32(-1), "54ff"},
		{int64(1000), "81" + "00000000000003e8"},
		{"ab", "a1026162"},
		{Symbol("ab"), "a3026162"},
		{[]byte{1, 2}, "a0020102"},
		{[]any{}, "45"},
		{[]any{uint32(1), "a"}, "c00602" + "5201" + "a10161"},
		{Map{{Key: Symbol("k"), Value: int32(1)}}, "c10602" + "a3016b" + "5401"},
		{[]Symbol{"a", "bc"}, "e00702a3" + "0161" + "026263"},
		{time.UnixMilli(1).UTC(), "830000000000000001"},
		{UUID{0: 1, 15: 2}, "9801000000000000000000000000000002"},
		{Described{Descriptor: uint64(0x24), Value: []any{}}, "005324" + "45"},
	}
	for _, c := range cases {
		b, err := Marshal(c.v)
		if err != nil {
			t.Fatalf("marshal %#v: %v", c.v, err)
		}
		if got := hex.EncodeToString(b); got != c.hex {
			t.Errorf("marshal %#v = %s, want %s", c.v, got, c.hex)
		}
		raw, _ := hex.DecodeString(c.hex)
		v, err := Unmarshal(raw)
		if err != nil {
			t.Fatalf("unmarshal %s: %v", c.hex, err)
		}
		if !reflect.DeepEqual(v, c.v) {
			t.Errorf("unmarshal %s = %#v, want %#v", c.hex, v, c.v)
		}
	}
}

// TestAgainstGoAMQP checks both directions against an independent encoder:
// go-amqp's public message marshalling, whose amqp-value section is a
// described (0x77) value.
func TestAgainstGoAMQP(t *testing.T) {
	ts := time.UnixMilli(1700000000123).UTC()
	lock := goamqp.UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	big := strings.Repeat("x", 300)
	msg := &goamqp.Message{Value: map[string]any{
		"lock-tokens": []goamqp.UUID{lock},
		"expirations": []time.Time{ts},
		"seq":         []int64{1, 2, 3},
		"n":           int32(-5),
		"s":           big,
		"b":           []byte{0, 1},
		"nested":      map[string]any{"x": uint64(1)},
		"list":        []any{"a", int64(2)},
	}}
	enc, err := msg.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	v, err := Unmarshal(enc)
	if err != nil {
		t.Fatalf("decode go-amqp encoding: %v", err)
	}
	d, ok := v.(Described)
	if !ok || d.Descriptor != uint64(0x77) {
		t.Fatalf("not an amqp-value section: %#v", v)
	}
	m := d.Value.(Map)
	get := func(k string) any {
		x, ok := m.Get(k)
		if !ok {
			t.Fatalf("key %q missing in %#v", k, m)
		}
		return x
	}
	if got := get("lock-tokens"); !reflect.DeepEqual(got, []UUID{UUID(lock)}) {
		t.Errorf("lock-tokens = %#v", got)
	}
	if got := get("expirations"); !reflect.DeepEqual(got, []time.Time{ts}) {
		t.Errorf("expirations = %#v", got)
	}
	if got := get("seq"); !reflect.DeepEqual(got, []int64{1, 2, 3}) {
		t.Errorf("seq = %#v", got)
	}
	if got := get("n"); got != int32(-5) {
		t.Errorf("n = %#v", got)
	}
	if got := get("s"); got != big {
		t.Errorf("s = %#v", got)
	}

	// The other direction: our encoding read by go-amqp.
	ours, err := Marshal(Described{Descriptor: uint64(0x77), Value: map[string]any{
		"expirations": []time.Time{ts},
		"status":      int32(200),
		"messages":    []any{map[string]any{"message": []byte{1, 2, 3}}},
		"ids":         []string{"a", big},
		"token":       UUID(lock),
	}})
	if err != nil {
		t.Fatal(err)
	}
	var back goamqp.Message
	if err := back.UnmarshalBinary(ours); err != nil {
		t.Fatalf("go-amqp cannot read our encoding: %v", err)
	}
	bm := back.Value.(map[string]any)
	if !reflect.DeepEqual(bm["expirations"], []time.Time{ts}) || bm["status"] != int32(200) ||
		!reflect.DeepEqual(bm["ids"], []string{"a", big}) || bm["token"] != lock {
		t.Errorf("go-amqp decoded %#v", bm)
	}
	if ml := bm["messages"].([]any); !reflect.DeepEqual(ml[0].(map[string]any)["message"], []byte{1, 2, 3}) {
		t.Errorf("messages = %#v", bm["messages"])
	}
}

func TestArrays(t *testing.T) {
	values := []any{
		[]bool{true, false},
		UbyteArray{1, 2},
		[]uint16{1},
		[]uint32{1, 1 << 20},
		[]uint64{1, 1 << 40},
		[]int8{-1},
		[]int16{-2},
		[]int32{-3},
		[]int64{-4},
		[]float32{1.5},
		[]float64{2.5},
		[]Char{'x'},
		[]Decimal32{{1}},
		[]Decimal64{{2}},
		[]Decimal128{{3}},
		[][]byte{{1}, bytes.Repeat([]byte{2}, 300)},
		[]string{"a"},
		Array{Code: codeList32, Elems: []any{[]any{uint32(1)}, []any{}}},
		Array{Code: codeMap32, Elems: []any{Map{{Key: "a", Value: nil}}}},
		Array{Code: codeArray32, Elems: []any{[]Symbol{"x"}, []uint32{1, 2}}},
		Array{Described: true, Descriptor: Symbol("d"), Code: codeStr8, Elems: []any{"a", "b"}},
		Array{Code: codeNull, Elems: []any{nil, nil}},
	}
	for _, v := range values {
		b, err := Marshal(v)
		if err != nil {
			t.Fatalf("marshal %#v: %v", v, err)
		}
		got, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("unmarshal %#v (%x): %v", v, b, err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Errorf("array round trip: got %#v, want %#v", got, v)
		}
	}
}

func TestMalformed(t *testing.T) {
	frame := func(body string) []byte {
		b, _ := hex.DecodeString(body)
		size := 8 + len(b)
		return append([]byte{byte(size >> 24), byte(size >> 16), byte(size >> 8), byte(size), 2, 0, 0, 0}, b...)
	}
	cases := map[string][]byte{
		"short header":          {0, 0, 0, 4},
		"size mismatch":         {0, 0, 0, 9, 2, 0, 0, 0},
		"bad doff":              {0, 0, 0, 8, 1, 0, 0, 0},
		"bad type":              {0, 0, 0, 8, 2, 7, 0, 0},
		"truncated list":        frame("0053" + "10" + "c0ff01"),
		"huge list count":       frame("0053" + "10" + "d000000004ffffffff"),
		"huge array count":      frame("0053" + "10" + "f000000005ffffffff40"),
		"huge string":           frame("0053" + "10" + "c00601" + "b1ffffffff"),
		"not described":         frame("45"),
		"unknown descriptor":    frame("0053" + "ee" + "45"),
		"bad boolean":           frame("0053" + "18" + "c00201" + "5607"),
		"missing container":     frame("0053" + "10" + "45"),
		"wrong field type":      frame("0053" + "10" + "c00201" + "43"),
		"odd map":               frame("0053" + "10" + "c00401" + "c10101"),
		"unknown constructor":   frame("0053" + "10" + "c00201" + "ff"),
		"payload after open":    frame("0053" + "10" + "c00301" + "a100" + "00"),
		"sasl body in amqp":     frame("0053" + "44" + "c00201" + "5000"),
		"bad delivery state":    frame("0053" + "15" + "c00a05" + "41" + "43" + "40" + "40" + "005399" + "45"),
		"array count vs width":  frame("0053" + "10" + "c00901" + "e0060470" + "00000001"),
		"double descriptor arr": frame("0053" + "10" + "c00801" + "e005010000" + "5301" + "00"),
	}
	deep := "0053" + "10"
	for range 200 {
		deep += "c0ff01"
	}
	cases["deep nesting"] = frame(deep)
	for name, b := range cases {
		if _, err := ParseFrame(b); err == nil {
			t.Errorf("%s: parsed %x without error", name, b)
		} else if !errors.Is(err, ErrDecode) {
			t.Errorf("%s: error %v does not wrap ErrDecode", name, err)
		}
	}
}

func TestReadFrameLimits(t *testing.T) {
	b, _ := AppendFrame(nil, Frame{Body: &Open{ContainerID: strings.Repeat("c", 600)}})
	if _, err := ReadFrame(bytes.NewReader(b), 512); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized frame: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader(b[:20]), 4096); err == nil || errors.Is(err, ErrDecode) {
		t.Fatalf("truncated stream should be an I/O error, got %v", err)
	}
}

func TestUUIDString(t *testing.T) {
	u := UUID{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8}
	if got := u.String(); got != "12345678-9abc-def0-0102-030405060708" {
		t.Fatal(got)
	}
}

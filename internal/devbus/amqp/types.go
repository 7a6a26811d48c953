package amqp

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrDecode is wrapped by every decoding error, so a caller can tell bad
// input (answer amqp:decode-error) from its own failures.
var ErrDecode = errors.New("amqp decode error")

func decodeErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrDecode}, args...)...)
}

// Symbol is the AMQP symbol type: an ASCII name such as a descriptor, an
// error condition or an annotation key. It is distinct from string on the
// wire, and Service Bus peers check which one they get.
type Symbol string

// UUID is the AMQP uuid type in RFC 4122 byte order.
type UUID [16]byte

// String formats u as 8-4-4-4-12 lower-case hex.
func (u UUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// Char is the AMQP char type: one UTF-32 code point.
type Char rune

// Decimal32 is an IEEE 754 decimal32 value, kept as its raw bytes: nothing
// here computes with decimals, it only carries them.
type Decimal32 [4]byte

// Decimal64 is an IEEE 754 decimal64 value, kept as its raw bytes.
type Decimal64 [8]byte

// Decimal128 is an IEEE 754 decimal128 value, kept as its raw bytes.
type Decimal128 [16]byte

// UbyteArray is an AMQP array of ubyte. It has its own type because []byte
// already means binary.
type UbyteArray []uint8

// Described is a described value: a descriptor (usually a ulong code or a
// symbol) and the value it describes.
type Described struct {
	Descriptor any
	Value      any
}

// MapEntry is one key/value pair of a Map.
type MapEntry struct {
	Key   any
	Value any
}

// Map is an AMQP map in wire order. AMQP allows keys of any type, including
// binary, which Go maps cannot hold, so a map decodes to this ordered list.
type Map []MapEntry

// Get returns the value stored under key and whether the key was present.
// Keys compare with ==, so it finds Symbol keys only when given a Symbol.
func (m Map) Get(key any) (any, bool) {
	if !scalar(key) {
		return nil, false
	}
	for _, e := range m {
		if scalar(e.Key) && e.Key == key {
			return e.Value, true
		}
	}
	return nil, false
}

// scalar reports whether v is of a type that == can compare without a
// runtime panic.
func scalar(v any) bool {
	switch v.(type) {
	case nil, bool, uint8, uint16, uint32, uint64, int8, int16, int32, int64, int,
		float32, float64, Char, Decimal32, Decimal64, Decimal128, UUID, string, Symbol:
		return true
	}
	return false
}

// Array is an AMQP array whose element type has no typed Go slice here:
// lists, maps, arrays, nulls and described elements. Code is the element
// constructor as it appeared on the wire; when encoding, list, map and
// array elements always use their 32-bit forms, whatever Code says.
type Array struct {
	// Described reports whether the element constructor carries a
	// descriptor; Descriptor is that descriptor.
	Described  bool
	Descriptor any
	Code       byte
	Elems      []any
}

// Type codes of the AMQP 1.0 type system (part 1, section 1.6).
const (
	codeDescribed  byte = 0x00
	codeNull       byte = 0x40
	codeBool       byte = 0x56
	codeTrue       byte = 0x41
	codeFalse      byte = 0x42
	codeUbyte      byte = 0x50
	codeUshort     byte = 0x60
	codeUint       byte = 0x70
	codeSmallUint  byte = 0x52
	codeUint0      byte = 0x43
	codeUlong      byte = 0x80
	codeSmallUlong byte = 0x53
	codeUlong0     byte = 0x44
	codeByte       byte = 0x51
	codeShort      byte = 0x61
	codeInt        byte = 0x71
	codeSmallInt   byte = 0x54
	codeLong       byte = 0x81
	codeSmallLong  byte = 0x55
	codeFloat      byte = 0x72
	codeDouble     byte = 0x82
	codeDecimal32  byte = 0x74
	codeDecimal64  byte = 0x84
	codeDecimal128 byte = 0x94
	codeChar       byte = 0x73
	codeTimestamp  byte = 0x83
	codeUUID       byte = 0x98
	codeVbin8      byte = 0xa0
	codeVbin32     byte = 0xb0
	codeStr8       byte = 0xa1
	codeStr32      byte = 0xb1
	codeSym8       byte = 0xa3
	codeSym32      byte = 0xb3
	codeList0      byte = 0x45
	codeList8      byte = 0xc0
	codeList32     byte = 0xd0
	codeMap8       byte = 0xc1
	codeMap32      byte = 0xd1
	codeArray8     byte = 0xe0
	codeArray32    byte = 0xf0
)

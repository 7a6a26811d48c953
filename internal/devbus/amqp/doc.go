// Package amqp is the AMQP 1.0 wire codec behind devbus: the type system
// (every primitive, list, map, array and described type), the frame header,
// the transport performatives (open, begin, attach, flow, transfer,
// disposition, detach, end, close), the delivery states, and the SASL
// frames. It knows nothing about Service Bus; internal/devbus builds the
// broker on top of it.
//
// Decoding is defensive: every length and count is checked against the
// bytes that are really there before anything is allocated, nesting is
// bounded, and malformed input yields an error wrapping ErrDecode rather
// than a panic, so a broker can answer a bad frame with amqp:decode-error
// and close that one connection.
//
// Values decode to these Go types: null → nil, boolean → bool, ubyte →
// uint8, ushort → uint16, uint → uint32, ulong → uint64, byte → int8, short
// → int16, int → int32, long → int64, float → float32, double → float64,
// decimal32/64/128 → Decimal32/Decimal64/Decimal128, char → Char, timestamp
// → time.Time (UTC), uuid → UUID, binary → []byte, string → string, symbol →
// Symbol, list → []any, map → Map (ordered, any keys), described →
// Described. Arrays of a primitive element type decode to a typed slice
// ([]Symbol, []string, []uint32, []time.Time, []UUID, ...); arrays of other
// element types (lists, maps, arrays, described, decimals, chars) decode to
// Array. Encoding accepts the same types plus int, map[Symbol]any and
// map[string]any for convenience.
package amqp

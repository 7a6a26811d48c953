package amqp

import (
	"encoding/binary"
	"math"
	"time"
)

// Unmarshal decodes exactly one AMQP value that fills all of b.
func Unmarshal(b []byte) (any, error) {
	d := decoder{b: b}
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	if d.pos != len(d.b) {
		return nil, decodeErr("%d bytes after the value", len(d.b)-d.pos)
	}
	return v, nil
}

// DecodeValue decodes one AMQP value from the front of b and returns it with
// the number of bytes it took.
func DecodeValue(b []byte) (any, int, error) {
	d := decoder{b: b}
	v, err := d.value(0)
	if err != nil {
		return nil, 0, err
	}
	return v, d.pos, nil
}

// maxZeroWidth caps arrays whose elements take no bytes at all (nulls,
// true, uint0, empty lists): nothing legitimate needs more, and without a
// cap a few bytes could ask for billions of elements.
const maxZeroWidth = 4096

type decoder struct {
	b   []byte
	pos int
}

func (d *decoder) remaining() int { return len(d.b) - d.pos }

func (d *decoder) need(n int) error {
	if n < 0 || d.remaining() < n {
		return decodeErr("value needs %d bytes, %d left", n, d.remaining())
	}
	return nil
}

// take returns the next n bytes, still backed by the frame, and moves past
// them: every fixed-width read goes through it so the bounds check is in one
// place.
func (d *decoder) take(n int) ([]byte, error) {
	if err := d.need(n); err != nil {
		return nil, err
	}
	v := d.b[d.pos : d.pos+n]
	d.pos += n
	return v, nil
}

func (d *decoder) u8() (byte, error) {
	v, err := d.take(1)
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

func (d *decoder) u16() (uint16, error) {
	v, err := d.take(2)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint16(v), nil
}

func (d *decoder) u32() (uint32, error) {
	v, err := d.take(4)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(v), nil
}

func (d *decoder) u64() (uint64, error) {
	v, err := d.take(8)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(v), nil
}

// fixedBytes reads a value that is nothing but its bytes: the decimals
// and the UUID, whose types are arrays of their width.
func fixedBytes[T ~[4]byte | ~[8]byte | ~[16]byte](d *decoder) (T, error) {
	var v T
	b, err := d.take(len(v))
	if err != nil {
		return v, err
	}
	return T(b), nil
}

// bytes copies, unlike take, because the value outlives the frame buffer.
func (d *decoder) bytes(n int) ([]byte, error) {
	v, err := d.take(n)
	if err != nil {
		return nil, err
	}
	out := make([]byte, n)
	copy(out, v)
	return out, nil
}

// constructor reads a constructor's code and, when the code is
// codeDescribed, the descriptor after it, which values and array element
// constructors both may carry.
func (d *decoder) constructor(depth int) (code byte, desc any, err error) {
	if depth > maxDepth {
		return 0, nil, decodeErr("values nested deeper than %d levels", maxDepth)
	}
	code, err = d.u8()
	if err != nil || code != codeDescribed {
		return code, nil, err
	}
	desc, err = d.value(depth + 1)
	return code, desc, err
}

// value reads a constructor and the value it introduces.
func (d *decoder) value(depth int) (any, error) {
	code, desc, err := d.constructor(depth)
	if err != nil {
		return nil, err
	}
	if code == codeDescribed {
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		return Described{Descriptor: desc, Value: v}, nil
	}
	return d.body(code, depth)
}

// width is the fixed size of a value body for fixed-width codes, or -1.
func width(code byte) int {
	switch code {
	case codeNull, codeTrue, codeFalse, codeUint0, codeUlong0, codeList0:
		return 0
	case codeBool, codeUbyte, codeByte, codeSmallUint, codeSmallUlong, codeSmallInt, codeSmallLong:
		return 1
	case codeUshort, codeShort:
		return 2
	case codeUint, codeInt, codeFloat, codeChar, codeDecimal32:
		return 4
	case codeUlong, codeLong, codeDouble, codeTimestamp, codeDecimal64:
		return 8
	case codeUUID, codeDecimal128:
		return 16
	}
	return -1
}

// body reads the value that follows constructor code.
func (d *decoder) body(code byte, depth int) (any, error) {
	switch code {
	case codeNull:
		return nil, nil
	case codeTrue:
		return true, nil
	case codeFalse:
		return false, nil
	case codeBool:
		v, err := d.u8()
		if err != nil {
			return nil, err
		}
		switch v {
		case 0:
			return false, nil
		case 1:
			return true, nil
		}
		return nil, decodeErr("boolean byte %#02x is neither 0 nor 1", v)
	case codeUbyte:
		return d.u8()
	case codeUshort:
		return d.u16()
	case codeUint:
		return d.u32()
	case codeSmallUint:
		v, err := d.u8()
		return uint32(v), err
	case codeUint0:
		return uint32(0), nil
	case codeUlong:
		return d.u64()
	case codeSmallUlong:
		v, err := d.u8()
		return uint64(v), err
	case codeUlong0:
		return uint64(0), nil
	case codeByte:
		v, err := d.u8()
		return int8(v), err
	case codeShort:
		v, err := d.u16()
		return int16(v), err
	case codeInt:
		v, err := d.u32()
		return int32(v), err
	case codeSmallInt:
		v, err := d.u8()
		return int32(int8(v)), err
	case codeLong:
		v, err := d.u64()
		return int64(v), err
	case codeSmallLong:
		v, err := d.u8()
		return int64(int8(v)), err
	case codeFloat:
		v, err := d.u32()
		return math.Float32frombits(v), err
	case codeDouble:
		v, err := d.u64()
		return math.Float64frombits(v), err
	case codeDecimal32:
		return fixedBytes[Decimal32](d)
	case codeDecimal64:
		return fixedBytes[Decimal64](d)
	case codeDecimal128:
		return fixedBytes[Decimal128](d)
	case codeChar:
		v, err := d.u32()
		return Char(v), err
	case codeTimestamp:
		v, err := d.u64()
		return time.UnixMilli(int64(v)).UTC(), err
	case codeUUID:
		return fixedBytes[UUID](d)
	case codeVbin8, codeVbin32, codeStr8, codeStr32, codeSym8, codeSym32:
		var n int
		if code&0xf0 == 0xa0 {
			v, err := d.u8()
			if err != nil {
				return nil, err
			}
			n = int(v)
		} else {
			v, err := d.u32()
			if err != nil {
				return nil, err
			}
			if uint64(v) > uint64(d.remaining()) {
				return nil, decodeErr("variable-width value of %d bytes, %d left", v, d.remaining())
			}
			n = int(v)
		}
		raw, err := d.bytes(n)
		if err != nil {
			return nil, err
		}
		switch code {
		case codeStr8, codeStr32:
			return string(raw), nil
		case codeSym8, codeSym32:
			return Symbol(raw), nil
		}
		return raw, nil
	case codeList0:
		return []any{}, nil
	case codeList8, codeList32, codeMap8, codeMap32:
		sub, count, err := d.compoundWindow(code == codeList8 || code == codeMap8, false)
		if err != nil {
			return nil, err
		}
		if code == codeList8 || code == codeList32 {
			l := make([]any, 0, count)
			for range count {
				v, err := sub.value(depth + 1)
				if err != nil {
					return nil, err
				}
				l = append(l, v)
			}
			return l, sub.done()
		}
		if count%2 != 0 {
			return nil, decodeErr("map with an odd number (%d) of items", count)
		}
		m := make(Map, 0, count/2)
		for range count / 2 {
			k, err := sub.value(depth + 1)
			if err != nil {
				return nil, err
			}
			v, err := sub.value(depth + 1)
			if err != nil {
				return nil, err
			}
			m = append(m, MapEntry{Key: k, Value: v})
		}
		return m, sub.done()
	case codeArray8, codeArray32:
		sub, count, err := d.compoundWindow(code == codeArray8, true)
		if err != nil {
			return nil, err
		}
		v, err := sub.arrayItems(count, depth)
		if err != nil {
			return nil, err
		}
		return v, sub.done()
	}
	return nil, decodeErr("unknown type constructor %#02x", code)
}

// compoundWindow reads the size and count of a list, map or array and
// returns a decoder limited to its items. Every list or map item takes at
// least one byte, so a larger count is refused here; array counts are
// checked against their element width in elems. Either way no count can
// make the decoder allocate more than the input justifies.
func (d *decoder) compoundWindow(small, array bool) (*decoder, int, error) {
	var size, count uint64
	var countWidth int
	if small {
		s, err := d.u8()
		if err != nil {
			return nil, 0, err
		}
		size, countWidth = uint64(s), 1
	} else {
		s, err := d.u32()
		if err != nil {
			return nil, 0, err
		}
		size, countWidth = uint64(s), 4
	}
	if size > uint64(d.remaining()) {
		return nil, 0, decodeErr("compound of %d bytes, %d left", size, d.remaining())
	}
	if size < uint64(countWidth) {
		return nil, 0, decodeErr("compound size %d cannot hold its count", size)
	}
	sub := &decoder{b: d.b[d.pos : d.pos+int(size)]}
	d.pos += int(size)
	if small {
		c, _ := sub.u8()
		count = uint64(c)
	} else {
		c, _ := sub.u32()
		count = uint64(c)
	}
	if count > size && !array {
		return nil, 0, decodeErr("compound claims %d items in %d bytes", count, size)
	}
	return sub, int(count), nil
}

func (d *decoder) done() error {
	if d.remaining() != 0 {
		return decodeErr("%d bytes left over inside a compound value", d.remaining())
	}
	return nil
}

// arrayItems reads an array's element constructor and its count elements.
func (d *decoder) arrayItems(count, depth int) (any, error) {
	code, desc, err := d.constructor(depth)
	if err != nil {
		return nil, err
	}
	if code == codeDescribed {
		code, err = d.u8()
		if err != nil {
			return nil, err
		}
		if code == codeDescribed {
			return nil, decodeErr("array element constructor described twice")
		}
		elems, err := d.elems(code, count, depth)
		if err != nil {
			return nil, err
		}
		return Array{Described: true, Descriptor: desc, Code: code, Elems: elems}, nil
	}
	switch code {
	case codeBool, codeTrue, codeFalse:
		return typed[bool](d, code, count, depth)
	case codeUbyte:
		v, err := typed[uint8](d, code, count, depth)
		return UbyteArray(v), err
	case codeUshort:
		return typed[uint16](d, code, count, depth)
	case codeUint, codeSmallUint, codeUint0:
		return typed[uint32](d, code, count, depth)
	case codeUlong, codeSmallUlong, codeUlong0:
		return typed[uint64](d, code, count, depth)
	case codeByte:
		return typed[int8](d, code, count, depth)
	case codeShort:
		return typed[int16](d, code, count, depth)
	case codeInt, codeSmallInt:
		return typed[int32](d, code, count, depth)
	case codeLong, codeSmallLong:
		return typed[int64](d, code, count, depth)
	case codeFloat:
		return typed[float32](d, code, count, depth)
	case codeDouble:
		return typed[float64](d, code, count, depth)
	case codeDecimal32:
		return typed[Decimal32](d, code, count, depth)
	case codeDecimal64:
		return typed[Decimal64](d, code, count, depth)
	case codeDecimal128:
		return typed[Decimal128](d, code, count, depth)
	case codeChar:
		return typed[Char](d, code, count, depth)
	case codeTimestamp:
		return typed[time.Time](d, code, count, depth)
	case codeUUID:
		return typed[UUID](d, code, count, depth)
	case codeVbin8, codeVbin32:
		return typed[[]byte](d, code, count, depth)
	case codeStr8, codeStr32:
		return typed[string](d, code, count, depth)
	case codeSym8, codeSym32:
		return typed[Symbol](d, code, count, depth)
	}
	elems, err := d.elems(code, count, depth)
	if err != nil {
		return nil, err
	}
	return Array{Code: code, Elems: elems}, nil
}

func typed[T any](d *decoder, code byte, count, depth int) ([]T, error) {
	elems, err := d.elems(code, count, depth)
	if err != nil {
		return nil, err
	}
	out := make([]T, len(elems))
	for i, e := range elems {
		out[i] = e.(T)
	}
	return out, nil
}

func (d *decoder) elems(code byte, count, depth int) ([]any, error) {
	w := width(code)
	if (w < 0 && count > d.remaining()) || (w > 0 && count*w > d.remaining()) || (w == 0 && count > maxZeroWidth) {
		return nil, decodeErr("array of %d elements does not fit in %d bytes", count, d.remaining())
	}
	out := make([]any, 0, count)
	for range count {
		v, err := d.body(code, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

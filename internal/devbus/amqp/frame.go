package amqp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame types (part 2 section 2.3).
const (
	FrameAMQP uint8 = 0
	FrameSASL uint8 = 1
)

// MinMaxFrameSize is the smallest max-frame-size a peer may announce: every
// implementation must accept frames up to this size.
const MinMaxFrameSize = 512

// Protocol headers that open the AMQP and the SASL layer.
var (
	HeaderAMQP = [8]byte{'A', 'M', 'Q', 'P', 0, 1, 0, 0}
	HeaderSASL = [8]byte{'A', 'M', 'Q', 'P', 3, 1, 0, 0}
)

// Frame is one frame: its type, channel, performative (nil for an empty
// frame, which peers send as a heartbeat) and, for transfers, the payload
// that follows the performative.
type Frame struct {
	Type    uint8
	Channel uint16
	Body    Performative
	Payload []byte
}

// ErrFrameTooLarge is returned by ReadFrame for a frame larger than the
// negotiated maximum: the connection must close with framing-error.
var ErrFrameTooLarge = errors.New("amqp frame larger than max-frame-size")

// ReadFrame reads one frame from r. A frame whose size exceeds maxSize
// yields ErrFrameTooLarge without reading its body; a malformed frame
// yields an error wrapping ErrDecode; I/O failures are returned as they
// are.
func ReadFrame(r io.Reader, maxSize uint32) (Frame, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Frame{}, err
	}
	size := binary.BigEndian.Uint32(hdr[:4])
	if size < 8 {
		return Frame{}, decodeErr("frame size %d is smaller than its header", size)
	}
	if size > maxSize {
		return Frame{}, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, size, maxSize)
	}
	buf := make([]byte, size)
	copy(buf, hdr[:])
	if _, err := io.ReadFull(r, buf[8:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return ParseFrame(buf)
}

// ParseFrame decodes one complete frame, header included. Only transfer
// frames may carry bytes after the performative.
func ParseFrame(b []byte) (Frame, error) {
	if len(b) < 8 {
		return Frame{}, decodeErr("frame of %d bytes is shorter than its header", len(b))
	}
	size := binary.BigEndian.Uint32(b[:4])
	if uint64(size) != uint64(len(b)) {
		return Frame{}, decodeErr("frame header says %d bytes, got %d", size, len(b))
	}
	doff := int(b[4]) * 4
	if doff < 8 || doff > len(b) {
		return Frame{}, decodeErr("data offset %d outside the frame", doff)
	}
	fr := Frame{Type: b[5], Channel: binary.BigEndian.Uint16(b[6:8])}
	if fr.Type != FrameAMQP && fr.Type != FrameSASL {
		return Frame{}, decodeErr("unknown frame type %d", fr.Type)
	}
	body := b[doff:]
	if len(body) == 0 {
		return fr, nil
	}
	v, n, err := DecodeValue(body)
	if err != nil {
		return Frame{}, err
	}
	p, err := DecodePerformative(v)
	if err != nil {
		return Frame{}, err
	}
	_, isSASL := p.(interface{ sasl() })
	if isSASL != (fr.Type == FrameSASL) {
		return Frame{}, decodeErr("%T in a frame of type %d", p, fr.Type)
	}
	fr.Body = p
	if n < len(body) {
		if _, ok := p.(*Transfer); !ok {
			return Frame{}, decodeErr("%d bytes after a %T performative", len(body)-n, p)
		}
		fr.Payload = append([]byte(nil), body[n:]...)
	}
	return fr, nil
}

func (*SASLMechanisms) sasl() {}
func (*SASLInit) sasl()       {}
func (*SASLChallenge) sasl()  {}
func (*SASLResponse) sasl()   {}
func (*SASLOutcome) sasl()    {}

// AppendFrame appends the encoding of fr to b. A nil Body makes an empty
// (heartbeat) frame.
func AppendFrame(b []byte, fr Frame) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 2, fr.Type, byte(fr.Channel>>8), byte(fr.Channel))
	if fr.Body != nil {
		var err error
		b, err = AppendValue(b, fr.Body.Described())
		if err != nil {
			return b[:start], fmt.Errorf("encode %T: %w", fr.Body, err)
		}
		b = append(b, fr.Payload...)
	}
	size := len(b) - start
	if uint64(size) > 0xffffffff {
		return b[:start], fmt.Errorf("encode frame: %d bytes do not fit a frame", size)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(size))
	return b, nil
}

// TransferOverhead returns how many bytes of a frame a transfer
// performative takes, so that a sender can size payload chunks to the
// peer's max-frame-size.
func TransferOverhead(t *Transfer) (int, error) {
	b, err := AppendFrame(nil, Frame{Body: t})
	return len(b), err
}

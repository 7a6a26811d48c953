package amqp

import (
	"fmt"
	"math"
	"time"
)

// Descriptor codes (part 2 section 2.7, part 3 section 3.4/3.5, part 5
// section 5.3).
const (
	CodeOpen          uint64 = 0x10
	CodeBegin         uint64 = 0x11
	CodeAttach        uint64 = 0x12
	CodeFlow          uint64 = 0x13
	CodeTransfer      uint64 = 0x14
	CodeDisposition   uint64 = 0x15
	CodeDetach        uint64 = 0x16
	CodeEnd           uint64 = 0x17
	CodeClose         uint64 = 0x18
	CodeError         uint64 = 0x1d
	CodeReceived      uint64 = 0x23
	CodeAccepted      uint64 = 0x24
	CodeRejected      uint64 = 0x25
	CodeReleased      uint64 = 0x26
	CodeModified      uint64 = 0x27
	CodeSource        uint64 = 0x28
	CodeTarget        uint64 = 0x29
	CodeSASLMechanism uint64 = 0x40
	CodeSASLInit      uint64 = 0x41
	CodeSASLChallenge uint64 = 0x42
	CodeSASLResponse  uint64 = 0x43
	CodeSASLOutcome   uint64 = 0x44
)

var symbolicDescriptors = map[Symbol]uint64{
	"amqp:open:list":            CodeOpen,
	"amqp:begin:list":           CodeBegin,
	"amqp:attach:list":          CodeAttach,
	"amqp:flow:list":            CodeFlow,
	"amqp:transfer:list":        CodeTransfer,
	"amqp:disposition:list":     CodeDisposition,
	"amqp:detach:list":          CodeDetach,
	"amqp:end:list":             CodeEnd,
	"amqp:close:list":           CodeClose,
	"amqp:error:list":           CodeError,
	"amqp:received:list":        CodeReceived,
	"amqp:accepted:list":        CodeAccepted,
	"amqp:rejected:list":        CodeRejected,
	"amqp:released:list":        CodeReleased,
	"amqp:modified:list":        CodeModified,
	"amqp:source:list":          CodeSource,
	"amqp:target:list":          CodeTarget,
	"amqp:sasl-mechanisms:list": CodeSASLMechanism,
	"amqp:sasl-init:list":       CodeSASLInit,
	"amqp:sasl-challenge:list":  CodeSASLChallenge,
	"amqp:sasl-response:list":   CodeSASLResponse,
	"amqp:sasl-outcome:list":    CodeSASLOutcome,
}

// Role is a link endpoint's role: false is sender, true is receiver.
type Role bool

// The two link roles.
const (
	RoleSender   Role = false
	RoleReceiver Role = true
)

// Settle modes (part 2 section 2.8.2 and 2.8.3).
const (
	SenderSettleUnsettled uint8 = 0
	SenderSettleSettled   uint8 = 1
	SenderSettleMixed     uint8 = 2

	ReceiverSettleFirst  uint8 = 0
	ReceiverSettleSecond uint8 = 1
)

// Performative is a frame body: a transport performative or a SASL frame.
type Performative interface {
	// Described returns the value as it is written on the wire.
	Described() Described
}

// Open is the first frame of a connection (part 2 section 2.7.1).
type Open struct {
	ContainerID         string
	Hostname            string
	MaxFrameSize        uint32 // decoded as 4294967295 when absent
	ChannelMax          uint16 // decoded as 65535 when absent
	IdleTimeout         time.Duration
	OutgoingLocales     []Symbol
	IncomingLocales     []Symbol
	OfferedCapabilities []Symbol
	DesiredCapabilities []Symbol
	Properties          map[Symbol]any
}

// Described implements Performative.
func (p *Open) Described() Described {
	var idle any
	if p.IdleTimeout > 0 {
		idle = uint32(min(p.IdleTimeout/time.Millisecond, math.MaxUint32))
	}
	return fieldWriter{p.ContainerID, optStr(p.Hostname), p.MaxFrameSize, p.ChannelMax, idle,
		optSymbols(p.OutgoingLocales), optSymbols(p.IncomingLocales),
		optSymbols(p.OfferedCapabilities), optSymbols(p.DesiredCapabilities), optFields(p.Properties)}.described(CodeOpen)
}

// Begin starts a session (part 2 section 2.7.2).
type Begin struct {
	RemoteChannel       *uint16
	NextOutgoingID      uint32
	IncomingWindow      uint32
	OutgoingWindow      uint32
	HandleMax           uint32 // decoded as 4294967295 when absent
	OfferedCapabilities []Symbol
	DesiredCapabilities []Symbol
	Properties          map[Symbol]any
}

// Described implements Performative.
func (p *Begin) Described() Described {
	return fieldWriter{optU16(p.RemoteChannel), p.NextOutgoingID, p.IncomingWindow, p.OutgoingWindow,
		p.HandleMax, optSymbols(p.OfferedCapabilities), optSymbols(p.DesiredCapabilities),
		optFields(p.Properties)}.described(CodeBegin)
}

// Attach attaches a link to a session (part 2 section 2.7.3).
type Attach struct {
	Name                 string
	Handle               uint32
	Role                 Role
	SndSettleMode        *uint8
	RcvSettleMode        *uint8
	Source               *Source
	Target               *Target
	Unsettled            Map
	IncompleteUnsettled  bool
	InitialDeliveryCount *uint32
	MaxMessageSize       uint64
	OfferedCapabilities  []Symbol
	DesiredCapabilities  []Symbol
	Properties           map[Symbol]any
}

// Described implements Performative.
func (p *Attach) Described() Described {
	var src, tgt, unsettled any
	if p.Source != nil {
		src = p.Source.Described()
	}
	if p.Target != nil {
		tgt = p.Target.Described()
	}
	if p.Unsettled != nil {
		unsettled = p.Unsettled
	}
	return fieldWriter{p.Name, p.Handle, bool(p.Role), optU8(p.SndSettleMode), optU8(p.RcvSettleMode),
		src, tgt, unsettled, optBool(p.IncompleteUnsettled), optU32(p.InitialDeliveryCount),
		optULong(p.MaxMessageSize), optSymbols(p.OfferedCapabilities), optSymbols(p.DesiredCapabilities),
		optFields(p.Properties)}.described(CodeAttach)
}

// Flow updates session and link flow state (part 2 section 2.7.4).
type Flow struct {
	NextIncomingID *uint32
	IncomingWindow uint32
	NextOutgoingID uint32
	OutgoingWindow uint32
	Handle         *uint32
	DeliveryCount  *uint32
	LinkCredit     *uint32
	Available      *uint32
	Drain          bool
	Echo           bool
	Properties     map[Symbol]any
}

// Described implements Performative.
func (p *Flow) Described() Described {
	return fieldWriter{optU32(p.NextIncomingID), p.IncomingWindow, p.NextOutgoingID, p.OutgoingWindow,
		optU32(p.Handle), optU32(p.DeliveryCount), optU32(p.LinkCredit), optU32(p.Available),
		optBool(p.Drain), optBool(p.Echo), optFields(p.Properties)}.described(CodeFlow)
}

// Transfer carries (part of) a message (part 2 section 2.7.5). The payload
// travels after the performative in the same frame: see Frame.Payload.
type Transfer struct {
	Handle        uint32
	DeliveryID    *uint32
	DeliveryTag   []byte
	MessageFormat *uint32
	Settled       bool
	More          bool
	RcvSettleMode *uint8
	State         DeliveryState
	Resume        bool
	Aborted       bool
	Batchable     bool
}

// Described implements Performative.
func (p *Transfer) Described() Described {
	return fieldWriter{p.Handle, optU32(p.DeliveryID), optBytes(p.DeliveryTag), optU32(p.MessageFormat),
		optBool(p.Settled), optBool(p.More), optU8(p.RcvSettleMode), stateValue(p.State),
		optBool(p.Resume), optBool(p.Aborted), optBool(p.Batchable)}.described(CodeTransfer)
}

// Disposition informs the peer of delivery state changes (part 2 section
// 2.7.6).
type Disposition struct {
	Role      Role
	First     uint32
	Last      *uint32
	Settled   bool
	State     DeliveryState
	Batchable bool
}

// Described implements Performative.
func (p *Disposition) Described() Described {
	return fieldWriter{bool(p.Role), p.First, optU32(p.Last), optBool(p.Settled), stateValue(p.State),
		optBool(p.Batchable)}.described(CodeDisposition)
}

// Detach detaches a link (part 2 section 2.7.7).
type Detach struct {
	Handle uint32
	Closed bool
	Error  *Error
}

// Described implements Performative.
func (p *Detach) Described() Described {
	return fieldWriter{p.Handle, optBool(p.Closed), errValue(p.Error)}.described(CodeDetach)
}

// End ends a session (part 2 section 2.7.8).
type End struct {
	Error *Error
}

// Described implements Performative.
func (p *End) Described() Described {
	return fieldWriter{errValue(p.Error)}.described(CodeEnd)
}

// Close closes a connection (part 2 section 2.7.9).
type Close struct {
	Error *Error
}

// Described implements Performative.
func (p *Close) Described() Described {
	return fieldWriter{errValue(p.Error)}.described(CodeClose)
}

// Error is an AMQP error (part 2 section 2.8.14). It implements error so it
// can travel through Go error paths unchanged.
type Error struct {
	Condition   Symbol
	Description string
	Info        map[Symbol]any
}

// Error formats the condition and description, the way logs and wrapped
// Go errors show it.
func (e *Error) Error() string {
	if e.Description == "" {
		return string(e.Condition)
	}
	return fmt.Sprintf("%s: %s", e.Condition, e.Description)
}

// Described returns the error as written on the wire.
func (e *Error) Described() Described {
	return fieldWriter{e.Condition, optStr(e.Description), optFields(e.Info)}.described(CodeError)
}

func errValue(e *Error) any {
	if e == nil {
		return nil
	}
	return e.Described()
}

// Terminus holds the fields a source and a target share (part 3 section
// 3.5.3 and 3.5.4).
type Terminus struct {
	Address               string
	Durable               uint32
	ExpiryPolicy          Symbol
	Timeout               uint32
	Dynamic               bool
	DynamicNodeProperties map[Symbol]any
}

func (t *Terminus) fields() fieldWriter {
	var durable, timeout any
	if t.Durable != 0 {
		durable = t.Durable
	}
	if t.Timeout != 0 {
		timeout = t.Timeout
	}
	return fieldWriter{optStr(t.Address), durable, optSym(t.ExpiryPolicy), timeout, optBool(t.Dynamic),
		optFields(t.DynamicNodeProperties)}
}

func readTerminus(f *fieldReader) Terminus {
	return Terminus{
		Address:               f.address(0, "address"),
		Durable:               f.uintOr(1, "durable", 0),
		ExpiryPolicy:          f.sym(2, "expiry-policy"),
		Timeout:               f.uintOr(3, "timeout", 0),
		Dynamic:               f.boolean(4, "dynamic"),
		DynamicNodeProperties: f.fieldsMap(5, "dynamic-node-properties"),
	}
}

// Source is a link's source terminus (part 3 section 3.5.3).
type Source struct {
	Terminus
	DistributionMode Symbol
	Filter           map[Symbol]any
	DefaultOutcome   any
	Outcomes         []Symbol
	Capabilities     []Symbol
}

// Described returns the source as written on the wire.
func (s *Source) Described() Described {
	return append(s.Terminus.fields(), optSym(s.DistributionMode), optFields(s.Filter),
		s.DefaultOutcome, optSymbols(s.Outcomes), optSymbols(s.Capabilities)).described(CodeSource)
}

// Target is a link's target terminus (part 3 section 3.5.4).
type Target struct {
	Terminus
	Capabilities []Symbol
}

// Described returns the target as written on the wire.
func (t *Target) Described() Described {
	return append(t.Terminus.fields(), optSymbols(t.Capabilities)).described(CodeTarget)
}

// DeliveryState is a delivery's state or outcome (part 3 section 3.4):
// *Received, *Accepted, *Rejected, *Released or *Modified.
type DeliveryState interface {
	Described() Described
}

// Received says how much of a delivery has arrived.
type Received struct {
	SectionNumber uint32
	SectionOffset uint64
}

// Described implements DeliveryState.
func (s *Received) Described() Described {
	return fieldWriter{s.SectionNumber, s.SectionOffset}.described(CodeReceived)
}

// Accepted is the outcome of a successfully processed delivery.
type Accepted struct{}

// Described implements DeliveryState.
func (*Accepted) Described() Described { return fieldWriter{}.described(CodeAccepted) }

// Rejected is the outcome of a delivery the receiver refuses.
type Rejected struct {
	Error *Error
}

// Described implements DeliveryState.
func (s *Rejected) Described() Described {
	return fieldWriter{errValue(s.Error)}.described(CodeRejected)
}

// Released is the outcome of a delivery given back unprocessed.
type Released struct{}

// Described implements DeliveryState.
func (*Released) Described() Described { return fieldWriter{}.described(CodeReleased) }

// Modified is the outcome of a delivery given back with changes.
type Modified struct {
	DeliveryFailed     bool
	UndeliverableHere  bool
	MessageAnnotations map[Symbol]any
}

// Described implements DeliveryState.
func (s *Modified) Described() Described {
	return fieldWriter{optBool(s.DeliveryFailed), optBool(s.UndeliverableHere),
		optFields(s.MessageAnnotations)}.described(CodeModified)
}

func stateValue(s DeliveryState) any {
	if s == nil {
		return nil
	}
	return s.Described()
}

// SASLMechanisms lists the server's SASL mechanisms (part 5 section 5.3.3.1).
type SASLMechanisms struct {
	Mechanisms []Symbol
}

// Described implements Performative.
func (p *SASLMechanisms) Described() Described {
	return fieldWriter{p.Mechanisms}.described(CodeSASLMechanism)
}

// SASLInit selects a mechanism (part 5 section 5.3.3.2).
type SASLInit struct {
	Mechanism       Symbol
	InitialResponse []byte
	Hostname        string
}

// Described implements Performative.
func (p *SASLInit) Described() Described {
	return fieldWriter{p.Mechanism, optBytes(p.InitialResponse), optStr(p.Hostname)}.described(CodeSASLInit)
}

// SASLChallenge is a security challenge (part 5 section 5.3.3.3).
type SASLChallenge struct {
	Challenge []byte
}

// Described implements Performative.
func (p *SASLChallenge) Described() Described {
	return fieldWriter{p.Challenge}.described(CodeSASLChallenge)
}

// SASLResponse answers a challenge (part 5 section 5.3.3.4).
type SASLResponse struct {
	Response []byte
}

// Described implements Performative.
func (p *SASLResponse) Described() Described {
	return fieldWriter{p.Response}.described(CodeSASLResponse)
}

// SASL outcome codes (part 5 section 5.3.3.6).
const (
	SASLOK   uint8 = 0
	SASLAuth uint8 = 1
	SASLSys  uint8 = 2
)

// SASLOutcome ends the SASL exchange (part 5 section 5.3.3.5).
type SASLOutcome struct {
	Code           uint8
	AdditionalData []byte
}

// Described implements Performative.
func (p *SASLOutcome) Described() Described {
	return fieldWriter{p.Code, optBytes(p.AdditionalData)}.described(CodeSASLOutcome)
}

// listType is how one kind of described list decodes: its name for error
// texts, the fields it cannot do without, and the reading of its fields.
// The mandatory fields are checked first, in order, so that a peer that
// leaves one out hears of that before any type error further along.
type listType[T any] struct {
	name      string
	mandatory []mandatoryField
	read      func(f *fieldReader) T
}

type mandatoryField struct {
	i    int
	name string
}

func (t listType[T]) decode(l []any) (T, error) {
	f := &fieldReader{name: t.name, l: l}
	for _, m := range t.mandatory {
		f.mandatory(m.i, m.name)
	}
	v := t.read(f)
	return v, f.err
}

// bodies are the frame bodies by descriptor code.
var bodies = map[uint64]listType[Performative]{
	CodeOpen: {"open", []mandatoryField{{0, "container-id"}}, func(f *fieldReader) Performative {
		p := &Open{
			ContainerID:         f.str(0, "container-id"),
			Hostname:            f.str(1, "hostname"),
			MaxFrameSize:        f.uintOr(2, "max-frame-size", math.MaxUint32),
			IdleTimeout:         f.millis(4, "idle-time-out"),
			OutgoingLocales:     f.symbols(5, "outgoing-locales"),
			IncomingLocales:     f.symbols(6, "incoming-locales"),
			OfferedCapabilities: f.symbols(7, "offered-capabilities"),
			DesiredCapabilities: f.symbols(8, "desired-capabilities"),
			Properties:          f.fieldsMap(9, "properties"),
		}
		p.ChannelMax = math.MaxUint16
		if c := f.ushort(3, "channel-max"); c != nil {
			p.ChannelMax = *c
		}
		return p
	}},
	CodeBegin: {"begin", []mandatoryField{{1, "next-outgoing-id"}, {2, "incoming-window"}, {3, "outgoing-window"}}, func(f *fieldReader) Performative {
		return &Begin{
			RemoteChannel:       f.ushort(0, "remote-channel"),
			NextOutgoingID:      f.uintOr(1, "next-outgoing-id", 0),
			IncomingWindow:      f.uintOr(2, "incoming-window", 0),
			OutgoingWindow:      f.uintOr(3, "outgoing-window", 0),
			HandleMax:           f.uintOr(4, "handle-max", math.MaxUint32),
			OfferedCapabilities: f.symbols(5, "offered-capabilities"),
			DesiredCapabilities: f.symbols(6, "desired-capabilities"),
			Properties:          f.fieldsMap(7, "properties"),
		}
	}},
	CodeAttach: {"attach", []mandatoryField{{0, "name"}, {1, "handle"}, {2, "role"}}, func(f *fieldReader) Performative {
		p := &Attach{
			Name:                 f.str(0, "name"),
			Handle:               f.uintOr(1, "handle", 0),
			Role:                 Role(f.boolean(2, "role")),
			SndSettleMode:        f.ubyte(3, "snd-settle-mode"),
			RcvSettleMode:        f.ubyte(4, "rcv-settle-mode"),
			IncompleteUnsettled:  f.boolean(8, "incomplete-unsettled"),
			InitialDeliveryCount: f.uint(9, "initial-delivery-count"),
			MaxMessageSize:       f.ulong(10, "max-message-size"),
			OfferedCapabilities:  f.symbols(11, "offered-capabilities"),
			DesiredCapabilities:  f.symbols(12, "desired-capabilities"),
			Properties:           f.fieldsMap(13, "properties"),
		}
		if m, ok := fieldAs[Map](f, 7, "unsettled", "map"); ok {
			p.Unsettled = m
		}
		p.Source = nested(f, 5, CodeSource, sourceList)
		// A coordinator target (transactions) is not supported; it
		// decodes as an error so the peer learns at once.
		p.Target = nested(f, 6, CodeTarget, targetList)
		return p
	}},
	CodeFlow: {"flow", []mandatoryField{{1, "incoming-window"}, {2, "next-outgoing-id"}, {3, "outgoing-window"}}, func(f *fieldReader) Performative {
		return &Flow{
			NextIncomingID: f.uint(0, "next-incoming-id"),
			IncomingWindow: f.uintOr(1, "incoming-window", 0),
			NextOutgoingID: f.uintOr(2, "next-outgoing-id", 0),
			OutgoingWindow: f.uintOr(3, "outgoing-window", 0),
			Handle:         f.uint(4, "handle"),
			DeliveryCount:  f.uint(5, "delivery-count"),
			LinkCredit:     f.uint(6, "link-credit"),
			Available:      f.uint(7, "available"),
			Drain:          f.boolean(8, "drain"),
			Echo:           f.boolean(9, "echo"),
			Properties:     f.fieldsMap(10, "properties"),
		}
	}},
	CodeTransfer: {"transfer", []mandatoryField{{0, "handle"}}, func(f *fieldReader) Performative {
		p := &Transfer{
			Handle:        f.uintOr(0, "handle", 0),
			DeliveryID:    f.uint(1, "delivery-id"),
			DeliveryTag:   f.binary(2, "delivery-tag"),
			MessageFormat: f.uint(3, "message-format"),
			Settled:       f.boolean(4, "settled"),
			More:          f.boolean(5, "more"),
			RcvSettleMode: f.ubyte(6, "rcv-settle-mode"),
			Resume:        f.boolean(8, "resume"),
			Aborted:       f.boolean(9, "aborted"),
			Batchable:     f.boolean(10, "batchable"),
		}
		p.State = f.state(7, "state")
		return p
	}},
	CodeDisposition: {"disposition", []mandatoryField{{0, "role"}, {1, "first"}}, func(f *fieldReader) Performative {
		p := &Disposition{
			Role:      Role(f.boolean(0, "role")),
			First:     f.uintOr(1, "first", 0),
			Last:      f.uint(2, "last"),
			Settled:   f.boolean(3, "settled"),
			Batchable: f.boolean(5, "batchable"),
		}
		p.State = f.state(4, "state")
		return p
	}},
	CodeDetach: {"detach", []mandatoryField{{0, "handle"}}, func(f *fieldReader) Performative {
		p := &Detach{Handle: f.uintOr(0, "handle", 0), Closed: f.boolean(1, "closed")}
		p.Error = f.errorField(2, "error")
		return p
	}},
	CodeEnd: {"end", nil, func(f *fieldReader) Performative {
		return &End{Error: f.errorField(0, "error")}
	}},
	CodeClose: {"close", nil, func(f *fieldReader) Performative {
		return &Close{Error: f.errorField(0, "error")}
	}},
	CodeSASLMechanism: {"sasl-mechanisms", []mandatoryField{{0, "sasl-server-mechanisms"}}, func(f *fieldReader) Performative {
		return &SASLMechanisms{Mechanisms: f.symbols(0, "sasl-server-mechanisms")}
	}},
	CodeSASLInit: {"sasl-init", []mandatoryField{{0, "mechanism"}}, func(f *fieldReader) Performative {
		return &SASLInit{
			Mechanism:       f.sym(0, "mechanism"),
			InitialResponse: f.binary(1, "initial-response"),
			Hostname:        f.str(2, "hostname"),
		}
	}},
	CodeSASLChallenge: {"sasl-challenge", []mandatoryField{{0, "challenge"}}, func(f *fieldReader) Performative {
		return &SASLChallenge{Challenge: f.binary(0, "challenge")}
	}},
	CodeSASLResponse: {"sasl-response", []mandatoryField{{0, "response"}}, func(f *fieldReader) Performative {
		return &SASLResponse{Response: f.binary(0, "response")}
	}},
	CodeSASLOutcome: {"sasl-outcome", []mandatoryField{{0, "code"}}, func(f *fieldReader) Performative {
		p := &SASLOutcome{AdditionalData: f.binary(1, "additional-data")}
		if c := f.ubyte(0, "code"); c != nil {
			p.Code = *c
		}
		return p
	}},
}

// DecodePerformative turns a decoded frame body into its performative.
func DecodePerformative(v any) (Performative, error) {
	return decodeListOf(v, bodies, "a frame body")
}

// decodeListOf decodes a described list as the list type its descriptor
// names in types; kind names what the types are, for an unknown code.
func decodeListOf[T any](x any, types map[uint64]listType[T], kind string) (T, error) {
	var zero T
	code, l, err := describedFields(x)
	if err != nil {
		return zero, err
	}
	t, ok := types[code]
	if !ok {
		return zero, decodeErr("descriptor %#x is not %s", code, kind)
	}
	return t.decode(l)
}

var sourceList = listType[*Source]{"source", nil, func(f *fieldReader) *Source {
	return &Source{
		Terminus:         readTerminus(f),
		DistributionMode: f.sym(6, "distribution-mode"),
		Filter:           f.fieldsMap(7, "filter"),
		DefaultOutcome:   f.at(8),
		Outcomes:         f.symbols(9, "outcomes"),
		Capabilities:     f.symbols(10, "capabilities"),
	}
}}

var targetList = listType[*Target]{"target", nil, func(f *fieldReader) *Target {
	return &Target{Terminus: readTerminus(f), Capabilities: f.symbols(6, "capabilities")}
}}

// nested reads field i as a described list that must carry code, named
// for errors as the list type is.
func nested[T any](f *fieldReader, i int, code uint64, t listType[T]) T {
	var v T
	c, l, ok := f.describedList(i, t.name)
	if !ok {
		return v
	}
	if c != code {
		f.fail(t.name, c, t.name)
		return v
	}
	v, err := t.decode(l)
	f.keep(err)
	return v
}

func (f *fieldReader) errorField(i int, field string) *Error {
	_, l, ok := f.describedList(i, field)
	if !ok {
		return nil
	}
	e, err := DecodeError(l)
	f.keep(err)
	return e
}

var errorList = listType[*Error]{"error", []mandatoryField{{0, "condition"}}, func(f *fieldReader) *Error {
	return &Error{
		Condition:   f.sym(0, "condition"),
		Description: f.str(1, "description"),
		Info:        f.fieldsMap(2, "info"),
	}
}}

// DecodeError decodes the fields of an error list.
func DecodeError(l []any) (*Error, error) {
	return errorList.decode(l)
}

func (f *fieldReader) state(i int, field string) DeliveryState {
	x := f.at(i)
	if x == nil {
		return nil
	}
	s, err := DecodeDeliveryState(x)
	f.keep(err)
	return s
}

// states are the delivery states and outcomes by descriptor code.
var states = map[uint64]listType[DeliveryState]{
	CodeReceived: {"received", []mandatoryField{{0, "section-number"}, {1, "section-offset"}}, func(f *fieldReader) DeliveryState {
		return &Received{SectionNumber: f.uintOr(0, "section-number", 0), SectionOffset: f.ulong(1, "section-offset")}
	}},
	CodeAccepted: {"accepted", nil, func(*fieldReader) DeliveryState { return &Accepted{} }},
	CodeRejected: {"rejected", nil, func(f *fieldReader) DeliveryState {
		return &Rejected{Error: f.errorField(0, "error")}
	}},
	CodeReleased: {"released", nil, func(*fieldReader) DeliveryState { return &Released{} }},
	CodeModified: {"modified", nil, func(f *fieldReader) DeliveryState {
		return &Modified{
			DeliveryFailed:     f.boolean(0, "delivery-failed"),
			UndeliverableHere:  f.boolean(1, "undeliverable-here"),
			MessageAnnotations: f.fieldsMap(2, "message-annotations"),
		}
	}},
}

// DecodeDeliveryState decodes a delivery state or outcome.
func DecodeDeliveryState(x any) (DeliveryState, error) {
	return decodeListOf(x, states, "a delivery state")
}

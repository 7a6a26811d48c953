package writeback

import (
	"context"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"wbagent/internal/audit"
	"wbagent/internal/ledger"
	"wbagent/internal/logging"
	"wbagent/internal/protocol"
)

// EventStateRefused is the audit event of a session state (or some of its
// records) that did not authenticate and was treated as absent. Code is
// CodeStateUnauthenticated; Detail names the refused records and why.
const EventStateRefused = "session_state_refused"

// CodeStateUnauthenticated is the audit code of an EventStateRefused record.
const CodeStateUnauthenticated = "session_state_unauthenticated"

// NewSessionSeal derives the session-state MAC keys from the agent's
// decryption keys (HKDF-SHA-256 with ledger.SessionMACLabel), in their
// order: the first is the current key.
func NewSessionSeal(keys []*protocol.DecryptionKey) (*ledger.SessionSeal, error) {
	var sk []ledger.SessionKey
	for _, k := range keys {
		b, err := k.DeriveSecret(ledger.SessionMACLabel, 32)
		if err != nil {
			return nil, fmt.Errorf("session state key: %w", err)
		}
		sk = append(sk, ledger.SessionKey{KID: k.KID(), Key: b})
	}
	s, err := ledger.NewSessionSeal(sk)
	for _, k := range sk {
		clear(k.Key)
	}
	return s, err
}

// binding is what this delivery's session state belongs to.
func (t *task) binding() ledger.SessionBinding {
	return ledger.SessionBinding{Queue: t.h.o.Queue, SessionID: t.d.Message.SessionID}
}

// openSession decodes raw, keeping only the records that authenticate.
// What does not authenticate is logged, counted and audited, and then
// treated as absent: it never decides a result. The audit line is written
// before the state is used or overwritten, so the trail holds the forged
// record even though the next write replaces it; when that line cannot be
// written the delivery is left for redelivery like any audit failure.
func (t *task) openSession(ctx context.Context, raw []byte) (*ledger.SessionState, error) {
	ss, refused := t.h.o.Seal.Decode(raw, t.binding())
	if len(refused) == 0 {
		return ss, nil
	}
	if t.h.o.OnStateRefused != nil {
		t.h.o.OnStateRefused(len(refused))
	}
	parts := make([]string, len(refused))
	for i, r := range refused {
		parts[i] = r.String()
	}
	detail := fmt.Sprintf("%d session state record(s) ignored: %s", len(refused), strings.Join(parts, "; "))
	t.log.Warn("session state did not authenticate; treating it as absent",
		zap.String(logging.FieldRequestID, t.id()), zap.String(logging.FieldSessionID, t.d.Message.SessionID),
		zap.String(logging.FieldDetail, detail))
	rec := audit.Record{
		Time: t.now(), Event: EventStateRefused, RequestID: t.id(), Op: t.op(),
		Code: CodeStateUnauthenticated, Detail: detail, Agent: t.h.o.Agent,
	}
	if t.req != nil {
		rec.SenderKID = t.req.SenderKID
		rec.Target = targetMap(t.req.Target)
	}
	if err := t.retry(ctx, "writing the audit record of a refused session state", func() error { return t.h.o.Audit.Record(ctx, rec) }); err != nil {
		t.h.setAuditErr(err)
		return nil, fmt.Errorf("write audit record of a refused session state: %w", err)
	}
	return ss, nil
}

package devbus

import (
	"go.uber.org/zap"

	"wbagent/internal/logging"
)

func zapQueue(path string) zap.Field { return zap.String(logging.FieldQueue, path) }
func zapSession(id string) zap.Field { return zap.String(logging.FieldSessionID, id) }
func zapReason(r string) zap.Field   { return zap.String(logging.FieldReason, r) }

// logMsg names a message in log lines: queue, id, session, sequence number.
func logMsg(q *queue, m *message) []zap.Field {
	f := []zap.Field{zapQueue(q.path), zap.String(logging.FieldMessageID, m.messageID), zap.Int64("seq", m.seq)}
	if m.sessionID != "" {
		f = append(f, zapSession(m.sessionID))
	}
	return f
}

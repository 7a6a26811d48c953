package devbus

import (
	"cmp"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	goamqp "github.com/Azure/go-amqp"
)

// stateVersion is the version of the state file format.
const stateVersion = 1

type stateFile struct {
	Version int          `json:"version"`
	SavedAt time.Time    `json:"savedAt"`
	Queues  []stateQueue `json:"queues"`
}

type stateQueue struct {
	Config      stateConfig    `json:"config"`
	NextSeq     int64          `json:"nextSeq"`
	DLQNextSeq  int64          `json:"dlqNextSeq"`
	Messages    []stateMessage `json:"messages"`
	DeadLetters []stateMessage `json:"deadLetters"`
	Sessions    []stateSession `json:"sessions,omitempty"`
	Dedup       []stateDedup   `json:"dedup,omitempty"`
}

type stateConfig struct {
	Name                   string        `json:"name"`
	RequiresSession        bool          `json:"requiresSession"`
	LockDuration           time.Duration `json:"lockDuration"`
	MaxDeliveryCount       int           `json:"maxDeliveryCount"`
	DefaultTTL             time.Duration `json:"defaultTtl"`
	DeadLetterOnExpiration bool          `json:"deadLetterOnExpiration"`
	DuplicateDetection     time.Duration `json:"duplicateDetection"`
}

type stateMessage struct {
	Seq        int64         `json:"seq"`
	Body       []byte        `json:"body"` // the message's AMQP sections
	Enqueued   time.Time     `json:"enqueued"`
	TTL        time.Duration `json:"ttl,omitempty"`
	Deliveries uint32        `json:"deliveries"`
	Deferred   bool          `json:"deferred,omitempty"`
	DLReason   string        `json:"dlReason,omitempty"`
	DLDesc     string        `json:"dlDescription,omitempty"`
	DLSource   string        `json:"dlSource,omitempty"`
}

type stateSession struct {
	ID      string    `json:"id"`
	State   []byte    `json:"state"`
	Updated time.Time `json:"updated"`
}

type stateDedup struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// saveState writes every queue to path atomically. Locked messages are
// saved as available: a restart loses locks, as a broker failover does.
// s.mu is held.
func (s *Server) saveState(path string) error {
	st := stateFile{Version: stateVersion, SavedAt: s.clock.Now().UTC()}
	names := make([]string, 0, len(s.queues))
	for n := range s.queues {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		q := s.queues[n]
		sq := stateQueue{Config: stateConfig(q.cfg), NextSeq: q.nextSeq, DLQNextSeq: q.dlq.nextSeq}
		var err error
		if sq.Messages, err = snapshotMessages(q); err != nil {
			return err
		}
		if sq.DeadLetters, err = snapshotMessages(q.dlq); err != nil {
			return err
		}
		for id, g := range q.groups {
			if g.state != nil {
				sq.Sessions = append(sq.Sessions, stateSession{ID: id, State: g.state, Updated: g.stateUpdated})
			}
		}
		slices.SortFunc(sq.Sessions, func(a, b stateSession) int { return strings.Compare(a.ID, b.ID) })
		for _, e := range q.dedupOrder {
			if q.dedup[e.id] == e.at {
				sq.Dedup = append(sq.Dedup, stateDedup{ID: e.id, At: e.at})
			}
		}
		st.Queues = append(st.Queues, sq)
	}
	b, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		return fmt.Errorf("encode devbus state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".devbus-state-*")
	if err != nil {
		return fmt.Errorf("save devbus state to %s: %w", path, err)
	}
	_, werr := tmp.Write(b)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("save devbus state to %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("save devbus state to %s: %w", path, err)
	}
	return nil
}

func snapshotMessages(q *queue) ([]stateMessage, error) {
	var out []stateMessage
	for _, m := range q.bySeq {
		if m.gone {
			continue
		}
		body, err := m.body.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encode message %d of %s: %w", m.seq, q.path, err)
		}
		out = append(out, stateMessage{
			Seq: m.seq, Body: body, Enqueued: m.enqueued.UTC(), TTL: m.ttl, Deliveries: m.deliveries,
			Deferred: m.state == stDeferred, DLReason: m.dlReason, DLDesc: m.dlDesc, DLSource: m.dlSource,
		})
	}
	return out, nil
}

// loadState restores queues from path; a missing file is an empty state.
// Queues defined in Options keep their settings; queues only in the file
// come back with the settings they were saved with.
func (s *Server) loadState(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read devbus state: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("read devbus state %s: %w (delete the file to start empty)", path, err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("read devbus state %s: version %d is not supported (want %d)", path, st.Version, stateVersion)
	}
	now := s.clock.Now()
	for _, sq := range st.Queues {
		q := s.queues[strings.ToLower(sq.Config.Name)]
		if q == nil {
			if err := s.addQueue(QueueConfig(sq.Config)); err != nil {
				return fmt.Errorf("read devbus state %s: %w", path, err)
			}
			q = s.queues[strings.ToLower(sq.Config.Name)]
		}
		if err := restoreMessages(q, sq.Messages, sq.NextSeq, now); err != nil {
			return fmt.Errorf("read devbus state %s: %w", path, err)
		}
		if err := restoreMessages(q.dlq, sq.DeadLetters, sq.DLQNextSeq, now); err != nil {
			return fmt.Errorf("read devbus state %s: %w", path, err)
		}
		for _, ss := range sq.Sessions {
			g := q.group(ss.ID)
			g.state, g.stateUpdated = ss.State, ss.Updated
		}
		for _, d := range sq.Dedup {
			q.dedup[d.ID] = d.At
			q.dedupOrder = append(q.dedupOrder, dedupEntry{id: d.ID, at: d.At})
		}
	}
	return nil
}

func restoreMessages(q *queue, msgs []stateMessage, nextSeq int64, now time.Time) error {
	slices.SortFunc(msgs, func(a, b stateMessage) int { return cmp.Compare(a.Seq, b.Seq) })
	for _, sm := range msgs {
		body := &goamqp.Message{}
		if err := body.UnmarshalBinary(sm.Body); err != nil {
			return fmt.Errorf("message %d of %s: %w", sm.Seq, q.path, err)
		}
		m := &message{body: body, seq: sm.Seq, enqueued: sm.Enqueued, ttl: sm.TTL, deliveries: sm.Deliveries,
			dlReason: sm.DLReason, dlDesc: sm.DLDesc, dlSource: sm.DLSource, heapIdx: -1}
		if body.Properties != nil {
			m.messageID = messageIDString(body.Properties.MessageID)
			if body.Properties.GroupID != nil {
				m.sessionID = *body.Properties.GroupID
			}
		}
		q.bySeq = append(q.bySeq, m)
		g := q.groupOf(m)
		g.live++
		if sm.Deferred {
			m.state = stDeferred
		} else {
			m.state = stAvailable
			heap.Push(&g.ready, m)
		}
		if m.ttl > 0 {
			m.expires = m.enqueued.Add(m.ttl)
			q.armExpiry(m, now)
		}
		q.nextSeq = max(q.nextSeq, m.seq)
	}
	q.nextSeq = max(q.nextSeq, nextSeq)
	return nil
}

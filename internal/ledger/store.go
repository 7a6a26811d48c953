package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.uber.org/zap"
)

// FileName is the store's file inside agent.stateDir.
const FileName = "ledger.db"

var (
	bucketRecords = []byte("records") // id -> encoded record
	bucketCreated = []byte("created") // created (8 bytes, big-endian ns) + id -> nothing, for pruning in time order
)

// ErrInFlight means this agent is already working on the request id (the
// same message delivered twice at once). The caller leaves the second
// delivery for redelivery; by then the first has recorded its result.
var ErrInFlight = errors.New("request is already being applied by this agent; leave this delivery for redelivery")

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("ledger is closed")

// Options configure a Store. The zero value keeps records forever and uses
// the system clock.
type Options struct {
	// Retention is how long a record is kept after it was first written:
	// the protocol's maxLifetime + maxClockSkew, after which any redelivery
	// of the request is refused as expired anyway. Zero disables pruning.
	Retention time.Duration
	// PruneInterval is how often the background pruner runs; required
	// when Retention is set (the config owns the value).
	PruneInterval time.Duration
	// LockTimeout bounds the wait for the file lock another process may
	// hold; required, since zero would make bbolt wait for ever.
	LockTimeout time.Duration
	// Now and After are the clock; tests inject a fake one.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
	// Logger receives pruner warnings; nil logs nothing.
	Logger *zap.Logger
}

// Store is the agent's local request ledger. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	opts Options
	log  *zap.Logger

	mu       sync.Mutex
	inFlight map[string]struct{}
	probeMu  sync.Mutex // one Probe at a time: they share a file

	ops       chan *writeOp
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type writeOp struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// maxBatch bounds how many writes share one transaction.
const maxBatch = 256

// Open opens (creating when missing) the ledger in dir and starts the
// background pruner when opts.Retention is set.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	// The config owns these values; a zero here is a wiring mistake.
	if opts.Retention > 0 && opts.PruneInterval <= 0 {
		return nil, fmt.Errorf("open ledger: prune interval %s: give a positive duration with a retention", opts.PruneInterval)
	}
	if opts.LockTimeout <= 0 {
		return nil, fmt.Errorf("open ledger: lock timeout %s: give a positive duration", opts.LockTimeout)
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open ledger: create state directory: %w (check agent.stateDir and its permissions)", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open ledger %s: another process holds it; is a second wbagent using the same agent.stateDir?", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open ledger %s: %w (move the file aside if it is damaged; the agent then relies on session state and request expiry)", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketRecords, bucketCreated} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open ledger %s: create buckets: %w", path, err)
	}
	s := &Store{
		db:       db,
		opts:     opts,
		log:      opts.Logger,
		inFlight: map[string]struct{}{},
		ops:      make(chan *writeOp),
		stop:     make(chan struct{}),
	}
	s.wg.Add(1)
	go s.commitLoop()
	if opts.Retention > 0 {
		s.wg.Add(1)
		go s.pruneLoop()
	}
	return s, nil
}

// Close stops the pruner and closes the file. Writes after Close fail with
// ErrClosed.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()
		err = s.db.Close()
	})
	return err
}

// Get returns the record of id; its State is Unknown when there is none.
func (s *Store) Get(id string) (Record, error) {
	var r Record
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRecords).Get([]byte(id))
		if v == nil {
			return nil
		}
		var err error
		r, _, err = decodeValue(id, v)
		return err
	})
	if err != nil {
		return Record{}, fmt.Errorf("read ledger record %q: %w", clip(id), err)
	}
	return r, nil
}

// MarkApplying claims id for a directory write starting at at, and returns
// the record that existed before (State Unknown when none):
//
//   - Unknown: the applying record is now durable; go ahead.
//   - Done: nothing was changed and the claim is not held; resend prev.Result.
//   - Applying: an earlier attempt began at prev.At and did not finish (a
//     crash, or a transient failure). The claim is held and prev.At is kept,
//     because the earliest moment a write could have happened is what
//     decides whether a `change` already took effect.
//
// While held, a second MarkApplying of the same id returns ErrInFlight. The
// claim ends with MarkDone or Release.
func (s *Store) MarkApplying(id string, at time.Time) (Record, error) {
	r := Record{ID: id, State: Applying, At: at}
	if err := r.check(); err != nil {
		return Record{}, fmt.Errorf("mark request applying: %w", err)
	}
	s.mu.Lock()
	if _, busy := s.inFlight[id]; busy {
		s.mu.Unlock()
		return Record{}, ErrInFlight
	}
	s.inFlight[id] = struct{}{}
	s.mu.Unlock()

	prev, err := s.Get(id)
	if err != nil || prev.State == Done {
		s.Release(id)
		return prev, err
	}
	if prev.State == Applying {
		return prev, nil
	}
	created := s.opts.Now()
	if err := s.write(func(tx *bolt.Tx) error { return put(tx, r, created) }); err != nil {
		s.Release(id)
		return Record{}, fmt.Errorf("mark request %s applying: %w", id, err)
	}
	return Record{}, nil
}

// MarkDone records the result sent for id (the exact body bytes, compact
// JSON) and ends this agent's claim on it.
func (s *Store) MarkDone(id string, result []byte, at time.Time) error {
	r := Record{ID: id, State: Done, At: at, Result: result}
	if err := r.check(); err != nil {
		return fmt.Errorf("mark request done: %w", err)
	}
	created := s.opts.Now()
	err := s.write(func(tx *bolt.Tx) error { return put(tx, r, created) })
	if err != nil {
		return fmt.Errorf("mark request %s done: %w", id, err)
	}
	s.Release(id)
	return nil
}

// Release ends this agent's claim on id without recording an outcome, for a
// delivery that is abandoned; the applying record stays, so the redelivery
// knows a write may have happened.
func (s *Store) Release(id string) {
	s.mu.Lock()
	delete(s.inFlight, id)
	s.mu.Unlock()
}

// MarkAudited records that the audit line of id's result is written; it
// does nothing unless id is Done and not yet marked.
func (s *Store) MarkAudited(id string) error {
	// Most calls find nothing to do: check without a disk write first.
	if r, err := s.Get(id); err != nil || r.State != Done || r.Audited {
		return err
	}
	err := s.write(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRecords).Get([]byte(id))
		if v == nil {
			return nil
		}
		r, created, err := decodeValue(id, v)
		if err != nil || r.State != Done || r.Audited {
			return err
		}
		r.Audited = true
		return put(tx, r, time.Unix(0, created))
	})
	if err != nil {
		return fmt.Errorf("mark request %s audited: %w", id, err)
	}
	return nil
}

// Forget deletes id's applying record and ends this agent's claim, for a
// delivery in which every directory attempt failed before anything could be
// written (the server refused or never answered the connection). Keeping
// the record would make every redelivery prove from pwdLastSet that no
// write happened, which it cannot do while the directory is down, so the
// request could never be answered `expired`. A done record is kept.
func (s *Store) Forget(id string) error {
	defer s.Release(id)
	err := s.write(func(tx *bolt.Tx) error {
		recs := tx.Bucket(bucketRecords)
		v := recs.Get([]byte(id))
		if v == nil {
			return nil
		}
		r, created, err := decodeValue(id, v)
		if err != nil || r.State != Applying {
			return err
		}
		return deleteIndexed(tx, [][]byte{append(binary.BigEndian.AppendUint64(nil, uint64(created)), id...)})
	})
	if err != nil {
		return fmt.Errorf("forget request %s: %w", id, err)
	}
	return nil
}

// Prune deletes the records first written before before and returns how many.
func (s *Store) Prune(before time.Time) (int, error) {
	const chunk = 1000
	total := 0
	limit := binary.BigEndian.AppendUint64(nil, uint64(before.UnixNano()))
	for {
		var keys [][]byte
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketCreated).Cursor()
			for k, _ := c.First(); k != nil && len(keys) < chunk && string(k[:min(8, len(k))]) < string(limit); k, _ = c.Next() {
				keys = append(keys, append([]byte(nil), k...))
			}
			return nil
		})
		if err == nil && len(keys) > 0 {
			err = s.write(func(tx *bolt.Tx) error { return deleteIndexed(tx, keys) })
		}
		if err != nil {
			return total, fmt.Errorf("prune ledger: %w", err)
		}
		total += len(keys)
		if len(keys) < chunk {
			return total, nil
		}
	}
}

// deleteIndexed deletes the index keys and the records they point to, unless
// a record was rewritten since with another creation time.
func deleteIndexed(tx *bolt.Tx, keys [][]byte) error {
	recs, idx := tx.Bucket(bucketRecords), tx.Bucket(bucketCreated)
	for _, k := range keys {
		if err := idx.Delete(k); err != nil {
			return err
		}
		if len(k) < 8 {
			continue
		}
		id := k[8:]
		v := recs.Get(id)
		if v == nil {
			continue
		}
		if _, created, err := decodeValue(string(id), v); err == nil && created != int64(binary.BigEndian.Uint64(k)) {
			continue
		}
		if err := recs.Delete(id); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) pruneLoop() {
	defer s.wg.Done()
	for {
		before := s.opts.Now().Add(-s.opts.Retention)
		n, err := s.Prune(before)
		switch {
		case errors.Is(err, ErrClosed):
			return
		case err != nil:
			s.log.Warn("ledger prune failed; will retry", zap.Error(err))
		case n > 0:
			s.log.Debug("ledger pruned", zap.Int("records", n), zap.Time("before", before))
		}
		select {
		case <-s.opts.After(s.opts.PruneInterval):
		case <-s.stop:
			return
		}
	}
}

// write runs fn in a transaction shared with whatever other writes are
// waiting (group commit): one fsync serves them all, and a lone write is
// not delayed.
func (s *Store) write(fn func(*bolt.Tx) error) error {
	op := &writeOp{fn: fn, done: make(chan error, 1)}
	select {
	case s.ops <- op:
	case <-s.stop:
		return ErrClosed
	}
	return <-op.done
}

func (s *Store) commitLoop() {
	defer s.wg.Done()
	for {
		var batch []*writeOp
		select {
		case op := <-s.ops:
			batch = append(batch, op)
		case <-s.stop:
			return
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case op := <-s.ops:
				batch = append(batch, op)
			default:
				break drain
			}
		}
		err := s.db.Update(func(tx *bolt.Tx) error {
			for _, op := range batch {
				if err := op.fn(tx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil && len(batch) > 1 {
			// One write spoiled the shared transaction: give each its own,
			// so only the faulty one sees an error.
			for _, op := range batch {
				op.done <- s.db.Update(op.fn)
			}
			continue
		}
		for _, op := range batch {
			op.done <- err
		}
	}
}

// On-disk value: format byte, state byte, created and at as big-endian Unix
// nanoseconds, then the result bytes.
const (
	valueFormat = 1
	valueHeader = 18
	// stateDoneAudited is the stored state byte of a Done record whose
	// audit line is written (Record.Audited).
	stateDoneAudited = 3
)

func put(tx *bolt.Tx, r Record, created time.Time) error {
	recs, idx := tx.Bucket(bucketRecords), tx.Bucket(bucketCreated)
	id := []byte(r.ID)
	c := created.UnixNano()
	if old := recs.Get(id); old != nil {
		if _, oc, err := decodeValue(r.ID, old); err == nil {
			c = oc // a record keeps its first creation time
		}
	}
	v := make([]byte, valueHeader, valueHeader+len(r.Result))
	v[0], v[1] = valueFormat, byte(r.State)
	if r.State == Done && r.Audited {
		v[1] = stateDoneAudited
	}
	binary.BigEndian.PutUint64(v[2:], uint64(c))
	binary.BigEndian.PutUint64(v[10:], uint64(r.At.UnixNano()))
	v = append(v, r.Result...)
	if err := recs.Put(id, v); err != nil {
		return err
	}
	return idx.Put(append(binary.BigEndian.AppendUint64(nil, uint64(c)), id...), nil)
}

func decodeValue(id string, v []byte) (Record, int64, error) {
	if len(v) < valueHeader || v[0] != valueFormat || (v[1] != byte(Applying) && v[1] != byte(Done) && v[1] != stateDoneAudited) {
		return Record{}, 0, fmt.Errorf("record of %q is damaged or was written by a newer wbagent", clip(id))
	}
	state := State(v[1])
	if v[1] == stateDoneAudited {
		state = Done
	}
	r := Record{
		ID:      id,
		State:   state,
		Audited: v[1] == stateDoneAudited,
		At:      time.Unix(0, int64(binary.BigEndian.Uint64(v[10:]))).UTC(),
	}
	if r.State == Done {
		r.Result = append([]byte(nil), v[valueHeader:]...)
	}
	return r, int64(binary.BigEndian.Uint64(v[2:])), nil
}

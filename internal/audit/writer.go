package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
)

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("audit writer is closed")

// Sink is a further destination for audit records, written after the line
// is durable in the file (the Windows Event Log). A sink's failure is logged
// and does not fail Record: the file is the record of authority.
type Sink interface {
	Write(Record) error
	Close() error
}

// Options configure a Writer. The zero value is usable.
type Options struct {
	// Now fills Record.Time when it is zero.
	Now func() time.Time
	// Logger receives what the writer repaired at start-up and sink failures.
	Logger *zap.Logger
	// Sinks receive every record after its line is durable.
	Sinks []Sink
	// MaxSize rotates the file before a write would take it past this many
	// bytes (audit.rotate.maxSizeMB); zero never rotates by size.
	MaxSize int64
	// MaxAge rotates the file once its first line is this old
	// (audit.rotate.maxAge); zero never rotates by age.
	MaxAge time.Duration
	// open opens and locks a file for writing; tests inject a failing layer.
	open func(path string) (file, error)
}

// file is the part of *os.File the writer uses.
type file interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
	Sync() error
	Stat() (os.FileInfo, error)
	Close() error
}

// Writer appends hash-chained lines to an audit file. It is safe for
// concurrent use; lines are written in the order Record calls are taken, and
// concurrent calls share one fsync.
type Writer struct {
	path string
	opts Options
	log  *zap.Logger
	f    file

	// Owned by the commit goroutine after Open.
	size  int64  // length of the whole, durable lines: where the next line goes
	prev  string // hash of the last durable line
	dirty bool   // the file may hold bytes past size (a failed write)
	// first is the time of the file's first line (zero while it has
	// none), for rotation by age.
	first time.Time

	mu      sync.Mutex
	lastErr error // the last write's failure; nil after a success

	ops       chan *op
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type op struct {
	rec   Record
	probe bool
	done  chan error
}

// maxBatch bounds how many lines share one write and one fsync.
const maxBatch = 256

// Open opens (creating when missing) the audit file at path and continues
// its chain from the last line.
//
// A crash can leave the file ending in part of a line (bytes after the last
// newline). No Record call returned for such a line, so its message was not
// completed and will be audited again when redelivered; Open moves those
// bytes to path+".torn" (appended, for inspection) and cuts the file back to
// its last newline. If the last complete line does not verify, Open fails:
// that is damage or tampering, not a crash, and continuing would hide it.
func Open(path string, opts Options) (*Writer, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.open == nil {
		opts.open = openLocked
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("open audit file: create its directory: %w (check audit.file and permissions)", err)
	}
	f, err := opts.open(path)
	if err != nil {
		return nil, fmt.Errorf("open audit file %s: %w", path, err)
	}
	w := &Writer{path: path, opts: opts, log: opts.Logger, f: f, ops: make(chan *op), stop: make(chan struct{})}
	if err := w.recoverTail(); err != nil {
		f.Close()
		return nil, fmt.Errorf("open audit file %s: %w", path, err)
	}
	if w.size == 0 {
		if err := syncDir(path); err != nil {
			f.Close()
			return nil, fmt.Errorf("open audit file %s: sync its directory: %w", path, err)
		}
	}
	w.wg.Add(1)
	go w.commitLoop()
	return w, nil
}

// Path returns the file's path.
func (w *Writer) Path() string { return w.path }

// Record appends rec as one line and returns once the line is fsynced. On
// any failure (a full disk, an I/O error) it returns an error, nothing of
// the line stays in the file, and the chain is intact: a later Record writes
// the next line where this one would have gone. When ctx ends first Record
// returns ctx's error, and the line may or may not be written: callers must
// treat it as not recorded (and not complete the message).
func (w *Writer) Record(ctx context.Context, rec Record) error {
	return w.submit(ctx, &op{rec: rec, done: make(chan error, 1)})
}

// Ready reports whether the audit file can be written: nil while the last
// write succeeded. After a failure it tries a test write of a probe file
// next to the audit file, so readiness comes back when space does, even
// while no request arrives to retry.
func (w *Writer) Ready(ctx context.Context) error {
	w.mu.Lock()
	failed := w.lastErr != nil
	w.mu.Unlock()
	if !failed {
		return nil
	}
	return w.submit(ctx, &op{probe: true, done: make(chan error, 1)})
}

func (w *Writer) submit(ctx context.Context, o *op) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write audit line: %w", err)
	}
	select {
	case w.ops <- o:
	case <-w.stop:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("write audit line: %w", ctx.Err())
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("write audit line: %w (it may still be written)", ctx.Err())
	}
}

// Close stops the writer and closes the file and the sinks.
func (w *Writer) Close() error {
	var errs []error
	w.closeOnce.Do(func() {
		close(w.stop)
		w.wg.Wait()
		errs = append(errs, w.f.Close())
		for _, s := range w.opts.Sinks {
			errs = append(errs, s.Close())
		}
	})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close audit file %s: %w", w.path, err)
	}
	return nil
}

func (w *Writer) commitLoop() {
	defer w.wg.Done()
	for {
		var batch []*op
		select {
		case o := <-w.ops:
			batch = append(batch, o)
		case <-w.stop:
			return
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case o := <-w.ops:
				batch = append(batch, o)
			default:
				break drain
			}
		}
		w.commit(batch)
	}
}

// commit writes the batch's records as consecutive lines with one write and
// one fsync, then answers the batch's probes.
func (w *Writer) commit(batch []*op) {
	var (
		buf   []byte
		prev  = w.prev
		taken []*op
	)
	for _, o := range batch {
		if o.probe {
			continue
		}
		if o.rec.Time.IsZero() {
			o.rec.Time = w.opts.Now()
		}
		o.rec.Time = o.rec.Time.UTC().Truncate(time.Millisecond)
		line, hash, err := encodeLine(o.rec, prev)
		if err != nil {
			o.done <- err
			continue
		}
		o.rec = o.rec.clamped()
		o.rec.Prev, o.rec.Hash = prev, hash
		buf = append(append(buf, line...), '\n')
		prev = hash
		taken = append(taken, o)
	}
	if len(taken) > 0 {
		w.rotateIfDue(int64(len(buf)))
		err := w.append(buf)
		w.setErr(err)
		if err != nil {
			err = fmt.Errorf("write audit line to %s: %w; nothing was recorded and the chain is intact (free space or fix the disk; the next write retries)", w.path, err)
		} else {
			if w.size == 0 {
				w.first = taken[0].rec.Time
			}
			w.size += int64(len(buf))
			w.prev = prev
		}
		for _, o := range taken {
			o.done <- err
		}
		if err == nil {
			w.toSinks(taken)
		}
	}
	for _, o := range batch {
		if o.probe {
			o.done <- w.probe()
		}
	}
}

// append writes buf at the end of the durable lines and fsyncs. On failure
// it cuts the file back, so no part of buf stays to break the chain.
func (w *Writer) append(buf []byte) error {
	if err := w.repair(); err != nil {
		return err
	}
	n, err := w.f.WriteAt(buf, w.size)
	if err == nil && n < len(buf) {
		err = io.ErrShortWrite
	}
	if err == nil {
		err = w.f.Sync()
	}
	if err != nil {
		w.dirty = true
		if rerr := w.repair(); rerr != nil {
			w.log.Warn("audit file holds part of a failed write; cutting it back is retried before the next write", zap.String("path", w.path), zap.Error(rerr))
		}
		return err
	}
	return nil
}

// repair cuts the file back to its durable lines after a failed write.
func (w *Writer) repair() error {
	if !w.dirty {
		return nil
	}
	if err := w.f.Truncate(w.size); err != nil {
		return fmt.Errorf("cut the file back to its last whole line: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("cut the file back to its last whole line: %w", err)
	}
	w.dirty = false
	return nil
}

// probeBytes is what a readiness probe writes: more than a typical batch of
// lines, so a disk that passes the probe takes the next line too.
const probeBytes = 16 << 10

func (w *Writer) probe() error {
	err := w.repair()
	if err == nil {
		err = w.probeWrite()
	}
	if err != nil {
		return fmt.Errorf("audit file %s cannot be written: %w", w.path, err)
	}
	w.setErr(nil)
	return nil
}

func (w *Writer) probeWrite() error {
	path := w.path + ".probe"
	f, err := w.opts.open(path)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(make([]byte, probeBytes), 0)
	if err == nil {
		err = f.Sync()
	}
	terr := f.Truncate(0) // give the space back even when the write failed
	cerr := f.Close()
	rerr := os.Remove(path)
	return errors.Join(err, terr, cerr, rerr)
}

func (w *Writer) setErr(err error) {
	w.mu.Lock()
	w.lastErr = err
	w.mu.Unlock()
}

func (w *Writer) toSinks(ops []*op) {
	for _, s := range w.opts.Sinks {
		for _, o := range ops {
			if err := s.Write(o.rec); err != nil {
				w.log.Warn("audit sink failed; the audit file has the record", zap.String("requestId", o.rec.RequestID), zap.Error(err))
			}
		}
	}
}

// recoverTail finds the end of the last whole line, moves a torn tail
// aside, and takes the last line's hash as the chain's continuation.
func (w *Writer) recoverTail() error {
	st, err := w.f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	end, last, err := lastLine(w.f, size)
	if err != nil {
		return err
	}
	if end < size {
		torn := make([]byte, size-end)
		if _, err := w.f.ReadAt(torn, end); err != nil {
			return fmt.Errorf("read its torn last line: %w", err)
		}
		if err := appendFile(w.path+".torn", append(torn, '\n')); err != nil {
			return fmt.Errorf("keep its torn last line in %s.torn: %w", w.path, err)
		}
		w.size, w.dirty = end, true
		if err := w.repair(); err != nil {
			return err
		}
		w.log.Warn("audit file ended in part of a line (a crash during a write); moved it aside and continued the chain from the last whole line",
			zap.String("path", w.path), zap.String("moved_to", w.path+".torn"), zap.Int64("bytes", size-end))
	}
	w.size, w.prev = end, Genesis
	if last != nil {
		hash, _, err := checkLine(last)
		if err != nil {
			return fmt.Errorf("its last line does not verify (%v); run `wbagent audit verify %s`, keep the file as evidence, move it aside and start again", err, w.path)
		}
		w.prev = hash
		w.first = firstLineTime(w.f)
	}
	return nil
}

// lastLine returns the offset just past the file's last newline (0 when it
// has none) and the last whole line before it (nil when there is none).
func lastLine(f io.ReaderAt, size int64) (end int64, last []byte, err error) {
	const chunk = 64 << 10
	var buf []byte // the file's bytes from pos to size
	pos := size
	end = -1
	for pos > 0 {
		n := min(chunk, pos)
		pos -= n
		b := make([]byte, n, n+int64(len(buf)))
		if _, err := f.ReadAt(b, pos); err != nil && !errors.Is(err, io.EOF) {
			return 0, nil, fmt.Errorf("read its last line: %w", err)
		}
		buf = append(b, buf...)
		if end < 0 {
			i := bytes.LastIndexByte(buf, '\n')
			if i < 0 {
				if size-pos > MaxLineBytes+1 {
					return 0, nil, fmt.Errorf("it ends in more than %d bytes without a newline; this is not an audit file (check audit.file)", MaxLineBytes)
				}
				continue
			}
			end = pos + int64(i) + 1
		}
		rel := int(end - pos) // index just past the last newline in buf
		if j := bytes.LastIndexByte(buf[:rel-1], '\n'); j >= 0 {
			return end, buf[j+1 : rel-1], nil
		}
		if rel > MaxLineBytes+1 {
			return 0, nil, fmt.Errorf("its last line is longer than %d bytes; this is not an audit file (check audit.file)", MaxLineBytes)
		}
	}
	if end < 0 {
		return 0, nil, nil
	}
	return end, buf[:end-1], nil
}

func appendFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

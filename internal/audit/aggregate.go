package audit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"wbagent/internal/wire"
)

// Recorder takes audit records; *Writer is the real one.
type Recorder interface {
	Record(ctx context.Context, r Record) error
}

// AggregateOptions configure an Aggregator.
type AggregateOptions struct {
	// Interval is the length of one aggregation window
	// (audit.aggregateRejections); required.
	Interval time.Duration
	// MaxKeys bounds the windows open at once; rejections of further sender
	// kids share one window per reason. Required.
	MaxKeys int
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Logger receives summary lines that could not be written.
	Logger *zap.Logger
}

// OtherSenders is the SenderKID of a window shared by the sender kids
// beyond MaxKeys: an outsider can claim any kid, so each cannot have its own.
const OtherSenders = "*"

// Aggregator writes rejections of messages nobody trusted (malformed,
// unauthenticated) at a bounded rate: per event, code and sender kid, the
// first rejection of a window gets its own line, written before Record
// returns; the others in the window are counted, and one summary line with
// their Count is written when the window ends (or at Close). A flood then
// costs a few lines a minute, whatever its size. What the summary counts
// is not durable until it is written: after a crash the dead-letter queue,
// which holds every such message with its reason, is the record.
type Aggregator struct {
	rec  Recorder
	o    AggregateOptions
	log  *zap.Logger
	mu   sync.Mutex
	wins map[aggKey]*window

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

type aggKey struct{ event, code, kid string }

// window is one key's current window.
type window struct {
	start time.Time
	first Record // the line written for the window's first rejection
	more  int    // rejections since, not yet written
	last  Record // the latest of them
}

// NewAggregator starts an aggregator in front of rec; Close flushes it.
// The config owns the interval and the bound: a zero is refused.
func NewAggregator(rec Recorder, o AggregateOptions) (*Aggregator, error) {
	if o.Interval <= 0 {
		return nil, fmt.Errorf("audit aggregator: interval %s: give a positive duration (audit.aggregateRejections)", o.Interval)
	}
	if o.MaxKeys <= 0 {
		return nil, fmt.Errorf("audit aggregator: %d sender windows: give 1 or more", o.MaxKeys)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	a := &Aggregator{rec: rec, o: o, log: o.Logger, wins: map[aggKey]*window{}, stop: make(chan struct{}), done: make(chan struct{})}
	go a.loop()
	return a, nil
}

// Record takes one rejection. The first of a window is written through
// (its error returned, so the caller withholds the settlement as for any
// line); the rest of the window return nil at once and are counted.
func (a *Aggregator) Record(ctx context.Context, r Record) error {
	now := a.o.Now()
	if r.Time.IsZero() {
		r.Time = now
	}
	a.mu.Lock()
	k := aggKey{r.Event, r.Code, r.SenderKID}
	if k.kid != "" && !wire.IsKID(k.kid) {
		k.kid = OtherSenders // no sender has such a kid: it is made up
	}
	w, open := a.wins[k]
	if !open && len(a.wins) >= a.o.MaxKeys {
		k.kid = OtherSenders
		w, open = a.wins[k]
	}
	if open && now.Sub(w.start) < a.o.Interval {
		w.more++
		w.last = r
		a.mu.Unlock()
		return nil
	}
	var ended *window
	if open {
		ended = w
		delete(a.wins, k)
	}
	a.mu.Unlock()
	if ended != nil && ended.more > 0 {
		if err := a.rec.Record(ctx, summary(k, ended)); err != nil {
			a.keep(k, ended)
			return err
		}
	}
	if k.kid == OtherSenders {
		r.Detail = fmt.Sprintf("sender kid %q (made up, or one kid too many: such rejections are counted together) %s", clampString(r.SenderKID), r.Detail)
	}
	if err := a.rec.Record(ctx, r); err != nil {
		return err
	}
	a.mu.Lock()
	if _, ok := a.wins[k]; !ok {
		// (Another rejection may have opened the window meanwhile: its
		// line is written too, and this one is not counted again.)
		a.wins[k] = &window{start: now, first: r}
	}
	a.mu.Unlock()
	return nil
}

// keep puts back a window whose summary could not be written, merging it
// with one opened meanwhile, so the count is written later.
func (a *Aggregator) keep(k aggKey, w *window) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur, ok := a.wins[k]; ok {
		if cur.more == 0 {
			cur.last = w.last
		}
		cur.more += w.more
		return
	}
	a.wins[k] = w
}

// summary is the line for the counted rejections of w.
func summary(k aggKey, w *window) Record {
	r := w.last
	r.Count = w.more
	r.SenderKID = k.kid
	r.Detail = fmt.Sprintf("%d more %s messages (%s) since %s, after the line for %s; the last: %s",
		w.more, k.code, k.event, w.start.UTC().Format(time.RFC3339), w.first.RequestID, w.last.Detail)
	r.Time = time.Time{}
	return r
}

func (a *Aggregator) loop() {
	defer close(a.done)
	tick := time.NewTicker(max(a.o.Interval/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			a.flush(false)
		case <-a.stop:
			a.flush(true)
			return
		}
	}
}

// flush writes the summaries of the windows that ended (all of them when
// final); a summary that fails is kept for the next flush.
func (a *Aggregator) flush(final bool) {
	now := a.o.Now()
	a.mu.Lock()
	due := map[aggKey]*window{}
	for k, w := range a.wins {
		if final || now.Sub(w.start) >= a.o.Interval {
			due[k] = w
			delete(a.wins, k)
		}
	}
	a.mu.Unlock()
	for k, w := range due {
		if w.more == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := a.rec.Record(ctx, summary(k, w))
		cancel()
		if err != nil {
			a.log.Warn("the audit summary of aggregated rejections could not be written; retrying later",
				zap.String("event", k.event), zap.String("code", k.code), zap.Int("count", w.more), zap.Error(err))
			if !final {
				a.keep(k, w)
			}
		}
	}
}

// Close writes the summaries of every open window and stops. Call it
// before closing the Recorder.
func (a *Aggregator) Close() error {
	a.once.Do(func() { close(a.stop) })
	<-a.done
	return nil
}

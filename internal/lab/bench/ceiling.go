package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"

	"wbagent/internal/lab/sambadc"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

// Account is a directory user the load works on, with the password it has
// now (a change needs it, and each change moves it on).
type Account struct {
	User     *testbed.User
	Password *secret.Secret
}

// Load bounds one measured run: it stops after Duration or Count requests,
// whichever comes first.
type Load struct {
	Concurrency int
	Duration    time.Duration
	Count       int
}

// Figures is what one measured run produced.
type Figures struct {
	Requests  int     `json:"requests"`
	Errors    int     `json:"errors"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"perSecond"`
	Latency   Latency `json:"latency"`
}

// CeilingRun measures the directory alone: c goroutines, each on its own
// LDAPS connection bound as the agent's service account and on its own
// account, setting passwords with a bare go-ldap modify — the fewest round
// trips a writeback can cost. op is reset (replace unicodePwd) or change
// (delete the old, add the new, in one modify).
func CeilingRun(ctx context.Context, dom *testbed.Domain, op wire.Op, accounts []*Account, l Load) (Sample, error) {
	if len(accounts) < l.Concurrency {
		return Sample{}, fmt.Errorf("directory ceiling: %d accounts for concurrency %d", len(accounts), l.Concurrency)
	}
	conns := make([]*ldap.Conn, l.Concurrency)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range conns {
		c, err := ldap.DialURL(dom.DC.LDAPSURL(), ldap.DialWithTLSConfig(dom.DC.TLSConfig()))
		if err != nil {
			return Sample{}, fmt.Errorf("directory ceiling: connect to %s: %w", dom.DC.LDAPSURL(), err)
		}
		conns[i] = c
		if err := c.Bind(dom.Service.UPN, dom.Service.Password.Reveal()); err != nil {
			return Sample{}, fmt.Errorf("directory ceiling: bind as %s: %w", dom.Service.UPN, err)
		}
	}
	s := runWorkers(ctx, l, func(w int) (time.Duration, error) {
		a := accounts[w]
		pw := dom.Secrets.New()
		t0 := time.Now()
		err := setPassword(conns[w], op, a, pw)
		d := time.Since(t0)
		if err != nil {
			pw.Destroy()
			return 0, err
		}
		a.Password.Destroy()
		a.Password = pw
		return d, nil
	})
	if len(s.Latencies) == 0 {
		return s, fmt.Errorf("directory ceiling: no password set succeeded: %w", s.First)
	}
	return s, nil
}

// runWorkers runs l.Concurrency workers that call one until l is spent,
// and collects each call's latency, or its error.
func runWorkers(ctx context.Context, l Load, one func(w int) (time.Duration, error)) Sample {
	var (
		mu sync.Mutex
		s  Sample
		wg sync.WaitGroup
	)
	b := newBudget(l)
	start := time.Now()
	for w := range l.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b.take(ctx) {
				d, err := one(w)
				mu.Lock()
				if err != nil {
					s.Errors++
					if s.First == nil {
						s.First = err
					}
				} else {
					s.Latencies = append(s.Latencies, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	s.Took = time.Since(start)
	return s
}

// setPassword writes pw to a's account, as an administrator (reset) or as
// the user would (change, from a.Password).
func setPassword(c *ldap.Conn, op wire.Op, a *Account, pw *secret.Secret) error {
	m := ldap.NewModifyRequest(a.User.DN, nil)
	newVal := sambadc.EncodePassword(pw)
	defer clear(newVal)
	if op == wire.OpChange {
		oldVal := sambadc.EncodePassword(a.Password)
		defer clear(oldVal)
		m.Delete("unicodePwd", []string{string(oldVal)})
		m.Add("unicodePwd", []string{string(newVal)})
	} else {
		m.Replace("unicodePwd", []string{string(newVal)})
	}
	return c.Modify(m)
}

// budget hands out the requests of one Load: true until Count are taken,
// Duration has passed or ctx ends.
type budget struct {
	mu       sync.Mutex
	left     int
	deadline time.Time
}

func newBudget(l Load) *budget {
	return &budget{left: l.Count, deadline: time.Now().Add(l.Duration)}
}

func (b *budget) take(ctx context.Context) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.left <= 0 || ctx.Err() != nil || time.Now().After(b.deadline) {
		return false
	}
	b.left--
	return true
}

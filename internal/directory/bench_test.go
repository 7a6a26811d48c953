package directory

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

// BenchmarkReset measures resets per second through Apply (resolve, guard
// and one modify, pooled connections) at concurrency 1 and 4, next to raw
// go-ldap modifies by DN on pre-bound connections in the same run. Each
// worker resets its own user; the passwords cycle so none repeats within
// the history length that matters (resets ignore history on Samba).
func BenchmarkReset(b *testing.B) {
	needDC(b)
	for _, conc := range []int{1, 4} {
		users := make([]string, conc)
		dns := make([]string, conc)
		for i := range users {
			u := newUser(b, fx.staff, pw1)
			users[i], dns[i] = u.UPN, u.DN
		}
		b.Run(fmt.Sprintf("directory/c%d", conc), func(b *testing.B) {
			runWorkers(b, conc, func(w int, n int64) error {
				out := fx.dir.Apply(context.Background(), Change{Op: wire.OpReset, Target: Target{UserPrincipalName: users[w]}, New: benchPassword(n)})
				if out.Code != wire.CodeOK {
					return fmt.Errorf("%s: %v", out.Code, out.Err)
				}
				return nil
			})
		})
		b.Run(fmt.Sprintf("raw-go-ldap/c%d", conc), func(b *testing.B) {
			conns := make([]*ldap.Conn, conc)
			for i := range conns {
				conns[i] = svcConn(b)
			}
			runWorkers(b, conc, func(w int, n int64) error {
				pw, _ := encodePassword(benchPassword(n))
				req := ldap.NewModifyRequest(dns[w], nil)
				req.Replace("unicodePwd", []string{string(pw)})
				return conns[w].Modify(req)
			})
		})
	}
}

var benchSeq atomic.Int64

func benchPassword(n int64) *secret.Secret {
	return secret.FromString(fmt.Sprintf("Bench-Passw0rd-%d-%d", n, benchSeq.Add(1)))
}

// runWorkers splits b.N operations over conc workers and reports resets/s.
func runWorkers(b *testing.B, conc int, op func(worker int, n int64) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	b.ResetTimer()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				if err := op(w, n); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "resets/s")
}

package directory

import (
	"context"
	"strings"

	"go.uber.org/zap"
)

// protection resolves the built-in privileged groups as the guard will
// before its first write, so that a domain where they cannot be found
// (every write would then fail closed) shows in `check`, and lists what
// was found.
func (c *checker) protection(ctx context.Context, pc *pconn) {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	setDeadline(ctx, pc.conn)
	d := &Directory{opts: *c.o, log: zap.NewNop()}
	ds := &domainState{cfg: c.d, baseDN: c.d.BaseDN}
	set, err := d.resolvePrivileged(ctx, pc, ds)
	if err != nil {
		c.add(false, "built-in protection", err.Error(),
			"the service account must be able to read objectSid of the domain and of its groups (Authenticated Users can by default); "+
				"in a child domain, use domain controllers that are global catalogs")
		return
	}
	found := make([]string, len(set.groups))
	for i, g := range set.groups {
		found[i] = g.name + " = " + g.dn
	}
	c.add(true, "built-in protection", "privileged groups found by SID, their members refused: "+strings.Join(found, "; "), "")
}

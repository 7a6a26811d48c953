package devbus

import (
	"fmt"
	"strings"
	"time"

	"wbagent/internal/devbus/amqp"
)

// needs is the right a link needs: Listen to receive from an entity (the
// broker sends), Send to send to it; a $management link needs a token
// for its entity, whatever its rights, and its operations say more.
func (l *link) needs() rights {
	switch {
	case l.kind != kindEntity:
		return 0
	case l.role == amqp.RoleSender:
		return rightListen
	default:
		return rightSend
	}
}

// linkPath is the lower-case entity path a link's token must cover.
func (l *link) linkPath() string { return strings.ToLower(strings.Trim(l.addr, "/")) }

// unauthorizedDesc says why a link is refused, as Service Bus does: no
// valid token, or a token without the claim.
func (c *conn) unauthorizedDesc(l *link, path string, now time.Time) string {
	if need := l.needs(); need != 0 && c.authorized(path, now) {
		return fmt.Sprintf("Unauthorized access. '%s' claim(s) are required to perform this operation. Resource: '%s'.", need, l.addr)
	}
	return fmt.Sprintf("no valid CBS token covers %q: put a token for it on $cbs first", l.addr)
}

// manageAllowed checks the rights of a $management request: the
// operations devbus serves all act for a receiver, so they need Listen.
func (c *conn) manageAllowed(l *link) (string, bool) {
	if l.kind != kindMgmt {
		return "", true
	}
	now := c.srv.clock.Now()
	if c.authorizedFor(l.linkPath(), now, rightListen) {
		return "", true
	}
	if c.authorized(l.linkPath(), now) {
		return fmt.Sprintf("Unauthorized access. '%s' claim(s) are required to perform this operation. Resource: '%s'.", rightListen, l.addr), false
	}
	return fmt.Sprintf("no valid CBS token covers %q any more: put a new token on $cbs before the old one expires", l.addr), false
}

// addClaim records an authorization and, as Service Bus does, detaches
// the links it alone covered when it expires; srv.mu is held.
func (c *conn) addClaim(cl claim, now time.Time) {
	live := c.claims[:0]
	for _, x := range c.claims {
		if now.Before(x.expires) {
			live = append(live, x)
		}
	}
	c.claims = append(live, cl)
	srv := c.srv
	c.claimTimers = append(c.claimTimers, srv.clock.AfterFunc(cl.expires.Sub(now), func() {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		c.revalidate(cl)
	}))
}

// revalidate detaches every link no longer covered once expired ended;
// srv.mu is held.
func (c *conn) revalidate(expired claim) {
	if c.gone || c.closing {
		return
	}
	now := c.srv.clock.Now()
	for _, s := range c.sessions {
		for _, l := range s.links {
			if l.kind == kindCBS || l.detaching || l.cleaned || c.authorizedFor(l.linkPath(), now, l.needs()) {
				continue
			}
			l.forceDetach(&amqp.Error{Condition: amqp.ErrUnauthorizedAccess,
				Description: fmt.Sprintf("the token for %q expired at %s: put a new token on $cbs before the old one expires", l.addr, expired.expires.UTC().Format(time.RFC3339))})
		}
	}
}

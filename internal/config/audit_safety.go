package config

import "time"

// Defaults of the audit rotation and rejection aggregation.
const (
	DefaultAuditRotateMaxSizeMB = 64
	DefaultAggregateRejections  = time.Minute
	maxAggregateRejections      = time.Hour
	maxAuditRotateMaxSizeMB     = 1 << 20
	minAuditRotateMaxAge        = time.Minute
)

// completeAuditSafety fills and checks audit.rotate and
// audit.aggregateRejections. A key left out takes its default; written as
// 0 it turns the feature off.
func (c *Config) completeAuditSafety(k *checker) {
	a := &c.Audit
	if !k.present("audit.rotate.maxSizeMB") {
		a.Rotate.MaxSizeMB = DefaultAuditRotateMaxSizeMB
	}
	switch {
	case a.Rotate.MaxSizeMB < 0:
		k.fail("audit.rotate.maxSizeMB", "%d is negative: use a size in MB, or 0 never to rotate by size", a.Rotate.MaxSizeMB)
	case a.Rotate.MaxSizeMB > maxAuditRotateMaxSizeMB:
		k.fail("audit.rotate.maxSizeMB", "%d MB is more than %d: use a smaller size", a.Rotate.MaxSizeMB, maxAuditRotateMaxSizeMB)
	}
	if d := a.Rotate.MaxAge.D(); d != 0 && d < minAuditRotateMaxAge {
		k.fail("audit.rotate.maxAge", "%s is shorter than %s: use 1h, 24h or more, or 0s never to rotate by age", d, minAuditRotateMaxAge)
	}
	if !k.present("audit.aggregateRejections") {
		a.AggregateRejections = Duration(DefaultAggregateRejections)
	}
	if d := a.AggregateRejections.D(); d > maxAggregateRejections {
		k.fail("audit.aggregateRejections", "%s is longer than %s: a summary line that late hides a flood for too long", d, maxAggregateRejections)
	}
}

package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAuditSafetyDefaultsAndLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wbagent.yaml")
	c, err := Parse([]byte(minimal), path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Audit.Rotate.MaxSizeMB != DefaultAuditRotateMaxSizeMB || c.Audit.Rotate.MaxAge != 0 ||
		c.Audit.AggregateRejections.D() != DefaultAggregateRejections || c.HTTP.ReadyDetails {
		t.Fatalf("defaults: audit %+v, http %+v", c.Audit, c.HTTP)
	}
	off := minimal + "audit:\n  rotate: {maxSizeMB: 0, maxAge: 24h}\n  aggregateRejections: 0s\nhttp:\n  readyDetails: true\n"
	if c, err = Parse([]byte(off), path); err != nil {
		t.Fatal(err)
	}
	if c.Audit.Rotate.MaxSizeMB != 0 || c.Audit.Rotate.MaxAge.D() != 24*time.Hour || c.Audit.AggregateRejections != 0 || !c.HTTP.ReadyDetails {
		t.Fatalf("explicit values: audit %+v, http %+v", c.Audit, c.HTTP)
	}
	for _, bad := range []struct{ yaml, key string }{
		{"audit:\n  rotate: {maxSizeMB: -1}\n", "audit.rotate.maxSizeMB"},
		{"audit:\n  rotate: {maxAge: 5s}\n", "audit.rotate.maxAge"},
		{"audit:\n  aggregateRejections: 2h\n", "audit.aggregateRejections"},
	} {
		_, err := Parse([]byte(minimal+bad.yaml), path)
		if err == nil || !strings.Contains(err.Error(), bad.key) {
			t.Errorf("%q: %v; want an error naming %s", bad.yaml, err, bad.key)
		}
	}
}

package ledger

import (
	"os"
	"testing"
)

func TestProbeWritesAndCleansUp(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	if err := s.Probe(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != FileName {
		t.Fatalf("state folder holds %v after a probe; want only %s", entries, FileName)
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	if os.Geteuid() != 0 { // root writes anyway
		if err := s.Probe(); err == nil {
			t.Fatal("probe of a read-only folder succeeded")
		}
	}
}

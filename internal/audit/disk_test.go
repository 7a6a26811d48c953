package audit

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// fakeDisk is a file layer with a capacity shared by its files: a write
// past the free space writes what fits and fails with ENOSPC, like a full
// file system; syncs can be made to fail.
type fakeDisk struct {
	mu       sync.Mutex
	capacity int64
	sizes    map[string]int64
	failSync int
	partial  int // writes that stopped part-way
}

func (d *fakeDisk) open(path string) (file, error) {
	f, err := openLocked(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.sizes[path] = st.Size()
	d.mu.Unlock()
	return &fakeFile{file: f, d: d, path: path}, nil
}

func (d *fakeDisk) setCapacity(c int64) {
	d.mu.Lock()
	d.capacity = c
	d.mu.Unlock()
}

type fakeFile struct {
	file
	d    *fakeDisk
	path string
}

func (f *fakeFile) WriteAt(b []byte, off int64) (int, error) {
	d := f.d
	d.mu.Lock()
	defer d.mu.Unlock()
	var used int64
	for _, s := range d.sizes {
		used += s
	}
	cur := d.sizes[f.path]
	want := b
	var short error
	if grow := off + int64(len(b)) - cur; grow > d.capacity-used {
		fit := max(0, cur+(d.capacity-used)-off)
		want, short = b[:fit], syscall.ENOSPC
	}
	n, err := f.file.WriteAt(want, off)
	d.sizes[f.path] = max(cur, off+int64(n))
	if err == nil {
		err = short
	}
	if short != nil && n > 0 {
		d.partial++
	}
	return n, err
}

func (f *fakeFile) Truncate(size int64) error {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	if err := f.file.Truncate(size); err != nil {
		return err
	}
	f.d.sizes[f.path] = size
	return nil
}

func (f *fakeFile) Sync() error {
	f.d.mu.Lock()
	fail := f.d.failSync > 0
	if fail {
		f.d.failSync--
	}
	f.d.mu.Unlock()
	if fail {
		return syscall.EIO
	}
	return f.file.Sync()
}

func (f *fakeFile) Close() error {
	f.d.mu.Lock()
	delete(f.d.sizes, f.path)
	f.d.mu.Unlock()
	return f.file.Close()
}

// fill records rec(0), rec(1), ... until a Record fails or max are
// written, and returns how many were written and the failure.
func fill(ctx context.Context, w *Writer, max int) (written int, failure error) {
	for i := 0; i < max && failure == nil; i++ {
		if failure = w.Record(ctx, rec(i)); failure == nil {
			written++
		}
	}
	return written, failure
}

// TestFullDiskKeepsChain fills a fake disk until a write fails part-way,
// checks that nothing of the failed line stays and readiness fails, then
// gives space back and checks that writing resumes on an intact chain.
func TestFullDiskKeepsChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	disk := &fakeDisk{capacity: 3000, sizes: map[string]int64{}}
	w := openTest(t, path, Options{open: disk.open})
	ctx := context.Background()

	written, failure := fill(ctx, w, 100)
	if failure == nil || !errors.Is(failure, syscall.ENOSPC) || !strings.Contains(failure.Error(), "chain is intact") {
		t.Fatalf("Record on a full disk = %v; want ENOSPC explained", failure)
	}
	if disk.partial == 0 {
		t.Fatal("no write stopped part-way; the test does not exercise cutting back")
	}
	st, _ := os.Stat(path)
	if rep := verifyFile(t, path); !rep.OK() || rep.Lines != written {
		t.Fatalf("after the failed write: Verify = %+v, file %d bytes; want %d good lines and no part of the failed one", rep, st.Size(), written)
	}
	if err := w.Ready(ctx); err == nil {
		t.Fatal("Ready on a full disk = nil; want an error")
	}
	if err := w.Record(ctx, rec(500)); err == nil {
		t.Fatal("Record still succeeds on a full disk")
	}

	disk.setCapacity(1 << 20)
	if err := w.Ready(ctx); err != nil {
		t.Fatalf("Ready after space returned: %v", err)
	}
	if _, err := os.Stat(path + ".probe"); !os.IsNotExist(err) {
		t.Fatalf("probe file left behind: %v", err)
	}
	for i := 1000; i < 1005; i++ {
		if err := w.Record(ctx, rec(i)); err != nil {
			t.Fatalf("Record after space returned: %v", err)
		}
	}
	if rep := verifyFile(t, path); !rep.OK() || rep.Lines != written+5 {
		t.Fatalf("after recovery: Verify = %+v; want %d good lines", rep, written+5)
	}
}

// TestFailedSyncRemovesLine makes the fsync after a complete write fail:
// the line must be removed, since it is not known to be durable.
func TestFailedSyncRemovesLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	disk := &fakeDisk{capacity: 1 << 20, sizes: map[string]int64{}}
	w := openTest(t, path, Options{open: disk.open})
	ctx := context.Background()
	writeN(t, w, 0, 2)
	disk.mu.Lock()
	disk.failSync = 1
	disk.mu.Unlock()
	if err := w.Record(ctx, rec(2)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Record with a failing fsync = %v; want EIO", err)
	}
	if rep := verifyFile(t, path); !rep.OK() || rep.Lines != 2 {
		t.Fatalf("Verify = %+v; want the 2 earlier lines only", rep)
	}
	writeN(t, w, 3, 1)
	if rep := verifyFile(t, path); !rep.OK() || rep.Lines != 3 {
		t.Fatalf("Verify = %+v; want 3 good lines", rep)
	}
}

// TestFullTmpfs does the same on a real, tiny tmpfs (root only).
func TestFullTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	path := filepath.Join(dir, "audit.jsonl")
	w := openTest(t, path, Options{})
	ctx := context.Background()
	written, failure := fill(ctx, w, 10000)
	if !errors.Is(failure, syscall.ENOSPC) {
		t.Fatalf("Record on a full tmpfs = %v after %d lines; want ENOSPC", failure, written)
	}
	if rep := verifyFile(t, path); !rep.OK() || rep.Lines != written {
		t.Fatalf("Verify on the full tmpfs = %+v; want %d good lines", rep, written)
	}
	if err := w.Ready(ctx); err == nil {
		t.Fatal("Ready on a full tmpfs = nil")
	}
	if out, err := exec.Command("mount", "-o", "remount,size=1m", dir).CombinedOutput(); err != nil {
		t.Fatalf("grow tmpfs: %v: %s", err, out)
	}
	if err := w.Ready(ctx); err != nil {
		t.Fatalf("Ready after the tmpfs grew: %v", err)
	}
	for i := range 10 {
		if err := w.Record(ctx, rec(100000+i)); err != nil {
			t.Fatalf("Record after the tmpfs grew: %v", err)
		}
	}
	if rep := verifyFile(t, path); !rep.OK() || rep.Lines != written+10 {
		t.Fatalf("Verify after recovery = %+v; want %d good lines", rep, written+10)
	}
	t.Logf("%d lines filled 64 KiB; chain intact through ENOSPC and recovery", written)
}

package fileperm

import (
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ReadSmall reads a key or secret file of at most limit bytes and returns
// it with the FileInfo of the file it opened, so that CheckPrivate judges
// that file and not whatever the path names a moment later. A directory,
// a device or a file over the limit is refused before anything is read:
// a key or a password is never that large, and a FIFO could block
// forever. The bytes are read into one buffer of the file's size, since a
// growing one would leave copies of the secret behind; on a failed read
// that buffer is wiped. what names the file in errors ("key file").
func ReadSmall(what, path string, limit int64) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", what, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", what, err)
	}
	if !st.Mode().IsRegular() || st.Size() > limit {
		return nil, nil, fmt.Errorf("read %s %s: not a regular file of at most %d bytes", what, path, limit)
	}
	b := make([]byte, st.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		clear(b)
		return nil, nil, fmt.Errorf("read %s %s: %w", what, path, err)
	}
	return b, st, nil
}

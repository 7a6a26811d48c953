package config

import (
	"fmt"
	"io"
	"os"

	"wbagent/internal/fileperm"
)

// maxSecretFileBytes bounds a secret file: a password or connection
// string, never more.
const maxSecretFileBytes = 64 << 10

// readSecretFile reads a {file: PATH} secret, refusing a file that group
// or others may read or that another user owns (on Linux; Windows relies
// on the file's ACL): the secret would not be the agent's alone. The mode
// and owner checked are those of the file opened.
func readSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read secret file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read secret file: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() > maxSecretFileBytes {
		return nil, fmt.Errorf("read secret file %s: not a regular file of at most %d bytes", path, maxSecretFileBytes)
	}
	if err := fileperm.CheckPrivate("secret file", path, st); err != nil {
		return nil, err
	}
	// One buffer of the file's size: a growing one would leave copies
	// of the secret behind.
	b := make([]byte, st.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		clear(b)
		return nil, fmt.Errorf("read secret file %s: %w", path, err)
	}
	return b, nil
}

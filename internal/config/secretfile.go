package config

import "wbagent/internal/fileperm"

// maxSecretFileBytes bounds a secret file: a password or connection
// string, never more.
const maxSecretFileBytes = 64 << 10

// readSecretFile reads a {file: PATH} secret, refusing a file that group
// or others may read or that another user owns (on Linux; Windows relies
// on the file's ACL): the secret would not be the agent's alone. The mode
// and owner checked are those of the file opened.
func readSecretFile(path string) ([]byte, error) {
	b, st, err := fileperm.ReadSmall("secret file", path, maxSecretFileBytes)
	if err != nil {
		return nil, err
	}
	if err := fileperm.CheckPrivate("secret file", path, st); err != nil {
		clear(b)
		return nil, err
	}
	return b, nil
}

//go:build !unix

package fileperm

import "io/fs"

// checkMode has nothing to check: Windows has no mode bits; the
// installer's ACL protects the file.
func checkMode(string, string, fs.FileMode) error { return nil }

// checkOwner has nothing to check here: see checkMode.
func checkOwner(string, string, fs.FileInfo) error { return nil }

func unreadableFix(path string, _ bool) string {
	return "the file exists but the service account cannot read it: grant that account Read in the file's ACL (icacls \"" + path + "\" /grant ACCOUNT:R)"
}

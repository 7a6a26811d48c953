// Package fileperm decides whether a file holding a private key or a
// secret is the agent's alone: on Linux (and other Unix systems) a file
// that group or others may read, or that another user owns (and so may
// change, or open to everyone), is refused with the exact chmod or chown
// that fixes it. On Windows the installer's ACL protects these files and
// is checked elsewhere.
package fileperm

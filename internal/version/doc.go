// Package version holds the build's version, commit and date, stamped by the
// Makefile with -ldflags -X so a running agent can say exactly what it is.
package version

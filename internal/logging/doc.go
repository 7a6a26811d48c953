// Package logging builds the agent's zap logger: JSON or console, to stderr
// and optionally to a size-rotated file, with one set of field names
// (fields.go) so every component's lines can be queried the same way.
package logging

// Package secret holds passwords, keys and connection strings in a type that
// never prints its contents and can be wiped once used.
//
// Plain strings end up in %+v, JSON and log lines by accident; a Secret
// prints [REDACTED] through every formatting path the project uses (fmt,
// encoding/json, zap), so a stray log call cannot leak it.
package secret

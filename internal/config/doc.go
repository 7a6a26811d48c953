// Package config loads the agent's versioned YAML configuration strictly:
// unknown keys and wrong types are errors that name the key path and line,
// defaults are filled in one place, relative paths resolve against the
// config file's folder, and secrets stay references until the agent starts.
package config

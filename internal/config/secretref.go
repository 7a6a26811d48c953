package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"wbagent/internal/secret"
)

// SecretRef says where a secret comes from: an environment variable, a file,
// or (discouraged, warned at start) the config itself. The config never holds
// the resolved secret; Resolve reads it when the agent starts.
type SecretRef struct {
	Env   string `yaml:"env"`
	File  string `yaml:"file"`
	Value *secret.Secret
}

// UnmarshalYAML accepts exactly one of {env: NAME}, {file: PATH}, {value: "..."}.
func (r *SecretRef) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		return fmt.Errorf("a secret must be exactly one of {env: NAME}, {file: PATH} or {value: \"...\"}")
	}
	k, v := n.Content[0].Value, n.Content[1]
	if v.Kind != yaml.ScalarNode || v.Value == "" {
		return fmt.Errorf("secret %s: expected a non-empty text value", k)
	}
	switch k {
	case "env":
		r.Env = v.Value
	case "file":
		r.File = v.Value
	case "value":
		r.Value = secret.FromString(v.Value)
	default:
		return fmt.Errorf("secret: unknown source %q: use env, file or value", k)
	}
	return nil
}

// Source describes the reference without its value, for logs and errors.
func (r *SecretRef) Source() string {
	switch {
	case r == nil:
		return "none"
	case r.Env != "":
		return "environment variable " + r.Env
	case r.File != "":
		return "file " + r.File
	default:
		return "inline value"
	}
}

// Resolve returns the secret. getenv is os.Getenv outside tests.
func (r *SecretRef) Resolve(getenv func(string) string) (*secret.Secret, error) {
	switch {
	case r == nil:
		return nil, fmt.Errorf("no secret configured")
	case r.Env != "":
		v := getenv(r.Env)
		if v == "" {
			return nil, fmt.Errorf("environment variable %s is not set or empty: set it in the service's environment", r.Env)
		}
		return secret.FromString(v), nil
	case r.File != "":
		b, err := readSecretFile(r.File)
		if err != nil {
			return nil, err
		}
		defer clear(b)
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return nil, fmt.Errorf("secret file %s is empty", r.File)
		}
		return secret.New(b), nil
	case r.Value != nil:
		return secret.New(r.Value.Bytes()), nil
	}
	return nil, fmt.Errorf("no secret configured")
}

// MarshalJSON shows where the secret comes from, never the secret itself.
func (r *SecretRef) MarshalJSON() ([]byte, error) {
	m := map[string]string{}
	switch {
	case r.Env != "":
		m["env"] = r.Env
	case r.File != "":
		m["file"] = r.File
	default:
		m["value"] = secret.Redacted
	}
	return json.Marshal(m)
}

// String describes the source; it never shows an inline value.
func (r *SecretRef) String() string { return strings.TrimSpace(r.Source()) }

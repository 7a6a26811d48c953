package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// leaves flattens a config into its scalar values by key path.
func leaves(v reflect.Value, path string, out map[string]reflect.Value) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch {
	case v.Type() == durationType:
		out[path] = v
	case v.Kind() == reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			tag := strings.Split(v.Type().Field(i).Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" || !v.Type().Field(i).IsExported() {
				continue
			}
			leaves(v.Field(i), join(path, tag), out)
		}
	case v.Kind() == reflect.String, v.Kind() == reflect.Int, v.Kind() == reflect.Bool:
		out[path] = v
	}
}

// TestExampleSchemaAndDefaultsAgree: every value the example shows is the
// default unless it is a site's own choice listed here, and every default
// lies within the schema's bounds, so the three documents of a key never
// tell different stories (as the settle timeout once did: 20 s in the
// config, 30 s in the bus package).
func TestExampleSchemaAndDefaultsAgree(t *testing.T) {
	example, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	minimalCfg, err := Parse([]byte(minimal), filepath.Join(t.TempDir(), "wbagent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ex, def := map[string]reflect.Value{}, map[string]reflect.Value{}
	leaves(reflect.ValueOf(example).Elem(), "", ex)
	leaves(reflect.ValueOf(minimalCfg).Elem(), "", def)
	// The site's own values: names, paths, addresses and choices the
	// example makes on purpose.
	own := map[string]bool{}
	for _, k := range []string{
		"agent.name", "agent.stateDir", "agent.signingKey",
		"servicebus.namespace", "servicebus.sessions",
		"audit.file", "audit.eventLog", "log.level", "log.format",
		"log.file.path", "log.file.maxSizeMB", "log.file.maxBackups", "log.file.maxAgeDays",
		"servicebus.retry.maxRetries", "servicebus.retry.retryDelay", "servicebus.retry.maxRetryDelay",
	} {
		own[k] = true
	}
	for path, dv := range def {
		ev, ok := ex[path]
		if !ok || own[path] || strings.HasPrefix(path, "directory.domains") || strings.HasPrefix(path, "agent.trustedSenders") ||
			strings.HasPrefix(path, "servicebus.credential") || strings.HasPrefix(path, "servicebus.connectionString") {
			continue
		}
		if !reflect.DeepEqual(ev.Interface(), dv.Interface()) {
			t.Errorf("%s: the example shows %v, the default is %v", path, ev.Interface(), dv.Interface())
		}
	}
	if got := minimalCfg.ServiceBus.SettleTimeout.D(); got != DefaultSettleTimeout {
		t.Errorf("settle timeout default %s, want DefaultSettleTimeout %s", got, DefaultSettleTimeout)
	}

	schema := rawSchema(t)
	checked := 0
	for path, dv := range def {
		if dv.Kind() != reflect.Int {
			continue
		}
		node := schemaNode(schema, path)
		if node == nil {
			continue
		}
		n := float64(dv.Int())
		if lo, ok := node["minimum"].(float64); ok && n < lo {
			t.Errorf("%s: default %v is below the schema's minimum %v", path, n, lo)
		}
		if hi, ok := node["maximum"].(float64); ok && n > hi {
			t.Errorf("%s: default %v is above the schema's maximum %v", path, n, hi)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no integer default was checked against the schema")
	}
}

// rawSchema reads the JSON Schema as plain maps.
func rawSchema(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	return schema
}

// schemaNode finds the schema of a dotted key path, following $refs.
func schemaNode(schema map[string]any, path string) map[string]any {
	node := schema
	for _, part := range strings.Split(path, ".") {
		if ref, ok := node["$ref"].(string); ok {
			node, _ = schema["$defs"].(map[string]any)[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		}
		props, _ := node["properties"].(map[string]any)
		next, ok := props[part].(map[string]any)
		if !ok {
			return nil
		}
		node = next
	}
	return node
}

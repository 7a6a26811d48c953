package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

const examplePath = "../../config/wbagent.example.yaml"
const schemaPath = "../../config/wbagent.schema.json"

// minimal is the smallest valid config; cases below edit it.
const minimal = `version: 1
agent:
  decryptionKeys: [keys/agent-hpke.key]
  signingKey: keys/agent-sign.key
  trustedSenders:
    - {name: portal, publicKey: senders/portal.pub}
servicebus:
  connectionString: {env: WBAGENT_SB_CONNECTION}
directory:
  domains:
    - name: corp.example.test
      servers: [ldaps://dc1.corp.example.test:636]
      bind: {user: svc@corp.example.test, password: {file: bind.secret}}
  scope: {includeOUs: ["OU=Staff,DC=corp,DC=example,DC=test"]}
`

func TestExampleLoads(t *testing.T) {
	c, err := Load(examplePath)
	if err != nil {
		t.Fatalf("example config does not load: %v", err)
	}
	if c.Agent.Name != "dc-site-a-1" || !c.ServiceBus.Sessions || c.ServiceBus.MaxConcurrent != 8 ||
		c.Requests.RetryBudget.D().String() != "45s" || c.Directory.Domains[0].Bind.Method != "simple" ||
		c.HTTP.Listen != "127.0.0.1:9469" || c.Log.File.MaxBackups != 10 {
		t.Fatalf("example config read wrong: %+v", c)
	}
}

func TestMinimalDefaults(t *testing.T) {
	dir := t.TempDir()
	c, err := Parse([]byte(minimal), filepath.Join(dir, "wbagent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Directory.Domains[0]
	checks := map[string]bool{
		"queue":              c.ServiceBus.Queue == DefaultQueue,
		"maxConcurrent":      c.ServiceBus.MaxConcurrent == DefaultMaxConcurrent,
		"baseDN":             d.BaseDN == "DC=corp,DC=example,DC=test",
		"netbios":            d.NetBIOS == "CORP",
		"protectAdminCount":  *c.Directory.Scope.ProtectAdminCount,
		"protectedAccounts":  reflect.DeepEqual(c.Directory.Scope.ProtectedAccounts, []string{"Administrator", "krbtgt"}),
		"historyOnReset":     c.Directory.HistoryOnReset == "auto",
		"skew":               c.Requests.MaxClockSkew.D() == DefaultMaxClockSkew,
		"http default":       c.HTTP.Listen == DefaultHTTPListen,
		"relative key":       c.Agent.DecryptionKeys[0] == filepath.Join(dir, "keys", "agent-hpke.key"),
		"relative sender":    c.Agent.TrustedSenders[0].PublicKey == filepath.Join(dir, "senders", "portal.pub"),
		"relative secret":    d.Bind.Password.File == filepath.Join(dir, "bind.secret"),
		"grace":              c.Agent.GracePeriod.D() == DefaultGracePeriod,
		"agent name default": c.Agent.Name != "",
	}
	for name, ok := range checks {
		if !ok {
			t.Errorf("default %s not applied: %+v", name, c)
		}
	}
	off, err := Parse([]byte(minimal+"http: {listen: \"\"}\n"), "/x/wbagent.yaml")
	if err != nil || off.HTTP.Listen != "" {
		t.Fatalf("empty http.listen must turn the listener off: %v %q", err, off.HTTP.Listen)
	}
}

// TestProblems covers every class of config error: each must name the key
// path and the line, and say what is expected.
func TestProblems(t *testing.T) {
	cases := []struct {
		name, edit, want string
	}{
		{"misspelt key", strings.Replace(minimal, "  signingKey:", "  signingkey:", 1),
			`config line 4: agent.signingkey: unknown key (did you mean "signingKey"?)`},
		{"unknown section", minimal + "extras: {a: 1}\n", "config line 15: extras: unknown key"},
		{"plain ldap", strings.Replace(minimal, "[ldaps://dc1.corp.example.test:636]", "[ldaps://dc1, \"ldap://dc2\"]", 1),
			`config line 12: directory.domains[0].servers[1]: "ldap://dc2" is not allowed: password writes need ldaps:// or startTLS: true`},
		{"no version", strings.Replace(minimal, "version: 1\n", "", 1), "version: missing"},
		{"future version", strings.Replace(minimal, "version: 1", "version: 2", 1), "config line 1: version: 2 is not supported"},
		{"wrong type", minimal + "servicebus2: 1\n", "servicebus2: unknown key"},
		{"bool expected", strings.Replace(minimal, "servicebus:\n", "servicebus:\n  sessions: yes please\n", 1),
			"config line 8: servicebus.sessions: expected true or false"},
		{"int expected", strings.Replace(minimal, "servicebus:\n", "servicebus:\n  maxConcurrent: many\n", 1),
			"config line 8: servicebus.maxConcurrent: expected a whole number"},
		{"range", strings.Replace(minimal, "servicebus:\n", "servicebus:\n  maxConcurrent: 0\n", 1),
			"config line 8: servicebus.maxConcurrent: 0 is out of range"},
		{"bad duration", minimal + "requests: {retryBudget: 45}\n", "config line 15: requests.retryBudget: \"45\" is not a duration"},
		{"budget vs lifetime", minimal + "requests: {retryBudget: 20m}\n", "requests.retryBudget: 20m0s must be shorter than requests.maxLifetime"},
		{"secret form", strings.Replace(minimal, "{env: WBAGENT_SB_CONNECTION}", "Endpoint=sb://x", 1),
			"config line 8: servicebus.connectionString: a secret must be exactly one of"},
		{"list expected", strings.Replace(minimal, "[keys/agent-hpke.key]", "keys/agent-hpke.key", 1),
			"config line 3: agent.decryptionKeys: expected a list"},
		{"missing required", strings.Replace(minimal, "  signingKey: keys/agent-sign.key\n", "", 1),
			"config line 2: agent.signingKey: missing"},
		{"bad method", strings.Replace(minimal, "{user:", "{method: ntlm, user:", 1),
			`directory.domains[0].bind.method: "ntlm" is not known`},
		{"history enum", minimal + "  historyOnReset: always\n", `config line 15: directory.historyOnReset: "always" is not known`},
		{"yaml syntax", minimal + "agent: [\n", "not valid YAML"},
		{"empty", "", "the file is empty"},
		{"both bus forms", strings.Replace(minimal, "servicebus:\n", "servicebus:\n  namespace: x.servicebus.windows.net\n", 1),
			"servicebus.namespace: give either connectionString or namespace"},
		{"not a DN", strings.Replace(minimal, `["OU=Staff,DC=corp,DC=example,DC=test"]`, "[Staff]", 1), `directory.scope.includeOUs[0]: "Staff" is not a distinguished name`},
		{"no scope", strings.Replace(minimal, "  scope: {includeOUs: [\"OU=Staff,DC=corp,DC=example,DC=test\"]}\n", "", 1),
			"config line 9: directory.scope.includeOUs: missing: list the OUs the agent may write"},
		{"empty scope", strings.Replace(minimal, `{includeOUs: ["OU=Staff,DC=corp,DC=example,DC=test"]}`, "{includeOUs: []}", 1),
			"config line 14: directory.scope.includeOUs: missing"},
		{"scope and entireDomain", strings.Replace(minimal, "{includeOUs: [", "{entireDomain: true, includeOUs: [", 1),
			"config line 14: directory.scope.entireDomain: give includeOUs or entireDomain: true, not both"},
		{"unquoted DN in a flow list", strings.Replace(minimal, `["OU=Staff,DC=corp,DC=example,DC=test"]`, "[OU=Staff,DC=corp,DC=example,DC=test]", 1),
			`directory.scope.includeOUs[0]: "OU=Staff" lies in none of the configured domains`},
		{"domain without an OU", strings.Replace(minimal, "OU=Staff,DC=corp", "OU=Staff,DC=other", 1),
			"directory.scope.includeOUs: no OU inside domain corp.example.test (directory.domains[0], DC=corp,DC=example,DC=test)"},
		{"unknown privileged class", strings.Replace(minimal, "{includeOUs:", "{allowPrivileged: [Printer Operators], includeOUs:", 1),
			`config line 14: directory.scope.allowPrivileged[0]: "Printer Operators" is not a built-in privileged class`},
		{"discovery without a CA", strings.Replace(minimal, "      servers: [ldaps://dc1.corp.example.test:636]\n", "      discover: true\n", 1),
			"config line 12: directory.domains[0].discover: servers found by DNS SRV need tls.caFile"},
		{"servers and discovery without a CA", strings.Replace(minimal, "      servers: [", "      discover: true\n      servers: [", 1),
			"config line 12: directory.domains[0].discover: servers found by DNS SRV need tls.caFile"},
		{"neither servers nor discover", strings.Replace(minimal, "      servers: [ldaps://dc1.corp.example.test:636]\n", "", 1),
			"directory.domains[0].servers: missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.edit), "/etc/wbagent/wbagent.yaml")
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("want *config.Error, got %T %v", err, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error\n  %v\ndoes not contain\n  %s", err, tc.want)
			}
		})
	}
}

func TestFileErrorsAreDistinct(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(filepath.Join(dir, "nope.yaml"))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing file: want ErrNotFound, got %v", err)
	}
	if runtime.GOOS != "windows" && os.Geteuid() != 0 {
		p := filepath.Join(dir, "locked.yaml")
		if err := os.WriteFile(p, []byte(minimal), 0o000); err != nil {
			t.Fatal(err)
		}
		var ae *AccessError
		if _, err := Load(p); !errors.As(err, &ae) {
			t.Fatalf("unreadable file: want *AccessError, got %v", err)
		}
	}
	// A folder where a file is expected cannot be read either.
	var ae *AccessError
	if _, err := Load(dir); !errors.As(err, &ae) {
		t.Fatalf("folder as config: want *AccessError, got %v", err)
	}
}

func TestSecretsResolveAndStayRedacted(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bind.secret"), []byte("Bind-Pa55word!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inline := strings.Replace(minimal, "{env: WBAGENT_SB_CONNECTION}", `{value: "Endpoint=sb://h;SharedAccessKey=SUPERSECRETKEY"}`, 1)
	c, err := Parse([]byte(inline), filepath.Join(dir, "wbagent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings()) != 1 || !strings.Contains(c.Warnings()[0], "servicebus.connectionString is written inline") {
		t.Fatalf("inline secret must warn: %v", c.Warnings())
	}
	pw, err := c.Directory.Domains[0].Bind.Password.Resolve(os.Getenv)
	if err != nil || pw.Reveal() != "Bind-Pa55word!" {
		t.Fatalf("file secret: %v", err)
	}
	cs, err := c.ServiceBus.ConnectionString.Resolve(os.Getenv)
	if err != nil || !strings.Contains(cs.Reveal(), "SUPERSECRETKEY") {
		t.Fatalf("inline secret: %v", err)
	}
	dump, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(dump), "SUPERSECRETKEY") || strings.Contains(string(dump), "Bind-Pa55word") || !strings.Contains(string(dump), "[REDACTED]") {
		t.Fatalf("effective config leaks or lacks redaction: %s", dump)
	}
	env := &SecretRef{Env: "WB_TEST_UNSET_VAR"}
	if _, err := env.Resolve(func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "WB_TEST_UNSET_VAR is not set") {
		t.Fatalf("unset env: %v", err)
	}
}

func loadSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	f, err := os.Open(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddResource("wbagent.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("wbagent.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func yamlToJSONValue(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestExampleMatchesSchema(t *testing.T) {
	s := loadSchema(t)
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(yamlToJSONValue(t, data)); err != nil {
		t.Fatalf("example does not match the schema: %v", err)
	}
	bad := strings.Replace(string(data), "  signingKey:", "  signingkey:", 1)
	if err := s.Validate(yamlToJSONValue(t, []byte(bad))); err == nil {
		t.Fatal("schema accepts a misspelt key")
	}
}

// TestSchemaCoversEveryKey keeps the Go types and the JSON Schema in step:
// a key added to one and not the other fails here.
func TestSchemaCoversEveryKey(t *testing.T) {
	schema := rawSchema(t)
	var walk func(rt reflect.Type, node map[string]any, path string)
	walk = func(rt reflect.Type, node map[string]any, path string) {
		for rt.Kind() == reflect.Pointer {
			rt = rt.Elem()
		}
		if ref, ok := node["$ref"].(string); ok {
			node = schema["$defs"].(map[string]any)[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		}
		switch {
		case rt == durationType || rt == secretRefType:
			return
		case rt.Kind() == reflect.Slice:
			if items, ok := node["items"].(map[string]any); ok {
				walk(rt.Elem(), items, path+"[]")
			}
			return
		case rt.Kind() != reflect.Struct:
			return
		}
		props, _ := node["properties"].(map[string]any)
		seen := map[string]bool{}
		for i := 0; i < rt.NumField(); i++ {
			tag := strings.Split(rt.Field(i).Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			seen[tag] = true
			sub, ok := props[tag].(map[string]any)
			if !ok {
				t.Errorf("schema lacks %s", join(path, tag))
				continue
			}
			walk(rt.Field(i).Type, sub, join(path, tag))
		}
		for k := range props {
			if !seen[k] {
				t.Errorf("schema has %s, which the config does not know", join(path, k))
			}
		}
	}
	walk(reflect.TypeOf(Config{}), schema, "")
}

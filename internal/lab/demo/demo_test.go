package demo

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"wbagent/internal/lab/testbed"
)

// The demo, as `make demo` runs it: every step must end as the demo says,
// or Run fails.
func TestDemo(t *testing.T) {
	ctx := testbed.IntegrationContext(t, "needs a Samba AD DC", 3*time.Minute)
	bin, err := testbed.BuildAgent(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	start := time.Now()
	if err := (Options{Agent: bin}).Run(ctx, &out); err != nil {
		t.Fatalf("%v (run `make deps` if Samba is missing)\n%s", err, out.String())
	}
	t.Logf("demo took %s", time.Since(start).Round(time.Millisecond))
	for _, want := range []string{
		"[5/5]", "code ok", "password_policy (too_short)", "protected_account", "user_not_found",
		"5 lines checked, hash chain OK", "none found", "Torn down",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

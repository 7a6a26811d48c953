package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A failing check's text names servers and paths: /readyz shows it to
// loopback callers, and to others only with ReadyDetails.
func TestReadyzDetailsOnlyForLoopback(t *testing.T) {
	for _, c := range []struct {
		remote  string
		details bool
		want    bool // details shown
	}{
		{"127.0.0.1:40000", false, true},
		{"[::1]:40000", false, true},
		{"192.0.2.7:40000", false, false},
		{"[2001:db8::7]:40000", false, false},
		{"garbage", false, false},
		{"192.0.2.7:40000", true, true},
	} {
		s := newServer(t, ServerOptions{ReadyDetails: c.details})
		s.AddCheck("directory", func(context.Context) error { return errors.New("no DC answers: dc1.corp.example.test:636 refused") })
		s.AddCheck("audit", func(context.Context) error { return nil })
		req := httptest.NewRequest(http.MethodGet, "/readyz", nil)
		req.RemoteAddr = c.remote
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		var rep ReadyReport
		if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
			t.Fatalf("%s: body %q: %v", c.remote, rec.Body, err)
		}
		if rec.Code != http.StatusServiceUnavailable || rep.Status != "not ready" {
			t.Errorf("%s: %d %q; want 503 not ready", c.remote, rec.Code, rep.Status)
		}
		shown := strings.Contains(rec.Body.String(), "dc1.corp") || len(rep.Checks) > 0 || len(rep.Failing) > 0
		if shown != c.want {
			t.Errorf("%s (readyDetails %v): body %s; details shown %v, want %v", c.remote, c.details, rec.Body, shown, c.want)
		}
	}
}

package version

import "fmt"

// Set at link time: -X wbagent/internal/version.Version=... and so on.
var (
	// Version is the release version, e.g. 1.2.0, or "dev" for an unstamped build.
	Version = "dev"
	// Commit is the git commit the binary was built from.
	Commit = "unknown"
	// Date is the build time in RFC 3339.
	Date = "unknown"
)

// String returns a one-line description for `wbagent version` and start-up logs.
func String() string {
	return fmt.Sprintf("wbagent %s (commit %s, built %s)", Version, Commit, Date)
}

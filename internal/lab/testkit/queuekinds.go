package testkit

import "testing"

// ForQueueKinds runs fn as two subtests, "session queue" then "plain
// queue": the agent reads either kind (protocol v1 §1), and every
// guarantee a test checks must hold on both.
func ForQueueKinds(t *testing.T, fn func(t *testing.T, sessions bool)) {
	t.Helper()
	for _, sessions := range []bool{true, false} {
		t.Run(QueueKind(sessions), func(t *testing.T) { fn(t, sessions) })
	}
}

// QueueKind names a queue kind as ForQueueKinds names its subtests.
func QueueKind(sessions bool) string {
	if sessions {
		return "session queue"
	}
	return "plain queue"
}

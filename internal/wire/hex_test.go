package wire

import "testing"

func TestIsKID(t *testing.T) {
	for _, c := range []struct {
		s    string
		want bool
	}{
		{"9b1f3c2a7d4e5f60", true},
		{"9B1F3C2A7D4E5F60", false}, // uppercase is not the form senders write
		{"9b1f3c2a7d4e5f6", false},
		{"9b1f3c2a7d4e5f600", false},
		{"9b1f3c2a7d4e5f6g", false},
		{"", false},
	} {
		if got := IsKID(c.s); got != c.want {
			t.Errorf("IsKID(%q) = %v, want %v", c.s, got, c.want)
		}
	}
	if !IsLowerHex("", 0) || IsLowerHex("ab", 3) || !IsLowerHex("0123456789abcdef", 16) {
		t.Fatal("IsLowerHex disagrees with its length or alphabet")
	}
}

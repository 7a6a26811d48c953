package protocol

import "testing"

// BenchmarkOpen measures the agent's cost per request: signature check,
// strict parse, time checks and HPKE open, for each suite.
func BenchmarkOpen(b *testing.B) {
	f := newFixture(b)
	for _, key := range []*DecryptionKey{f.xwing, f.x25519} {
		b.Run(string(key.Suite()), func(b *testing.B) {
			m := f.build(b, f.spec(), key)
			b.ReportAllocs()
			for b.Loop() {
				req, err := f.opener.Open(m, f.now)
				if err != nil {
					b.Fatal(err)
				}
				req.Destroy()
			}
		})
	}
}

// BenchmarkBuildRequest measures the sender's cost: seal, encode and sign.
func BenchmarkBuildRequest(b *testing.B) {
	f := newFixture(b)
	for _, key := range []*DecryptionKey{f.xwing, f.x25519} {
		b.Run(string(key.Suite()), func(b *testing.B) {
			pub, spec := key.Public(), f.spec()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := BuildRequest(f.sender, pub, spec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

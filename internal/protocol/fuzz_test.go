package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"wbagent/internal/wire"
)

// seededFixture returns the fixture a fuzzer works with, after adding to
// f the bodies it starts from.
func seededFixture(f *testing.F) *fixture {
	fx := newFixture(f)
	for _, s := range requestSeeds(f, fx) {
		f.Add(s)
	}
	return fx
}

// requestSeeds are bodies the fuzzers start from: valid requests of each op
// and the vectors' bodies when the shared folder is present.
func requestSeeds(f *testing.F, fx *fixture) [][]byte {
	var seeds [][]byte
	for _, op := range []wire.Op{wire.OpReset, wire.OpChange, wire.OpUnlock} {
		spec := fx.spec()
		spec.Op = op
		spec.MustChange = true
		switch op {
		case wire.OpChange:
			spec.Old = secretOf("old")
		case wire.OpUnlock:
			spec.New = nil
		}
		seeds = append(seeds, fx.build(f, spec, fx.x25519).Body)
	}
	seeds = append(seeds,
		[]byte(`{"v":1,"id":"9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a","op":"unlock","target":{"domain":"CORP","sAMAccountName":"alice"},"actor":{"id":"a","kind":"self"},"issuedAt":"2026-11-24T18:00:00Z","expiresAt":"2026-11-24T18:05:00Z"}`),
		[]byte(`{"v":1,"target":{"immutableId":"opvjPjVaPkyUSq6wp5wB1A=="},"target":{}}`),
		[]byte(`{"a":"\ud83d\ude00\u00e9\n","b":[1,-0.5e+3,true,false,null,{}]}`),
		[]byte("\"\xff\""), []byte(`"\ud800"`), []byte(`[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]`),
	)
	return seeds
}

// FuzzParseRequest feeds arbitrary bodies to the request parser: it must
// never panic, and whatever it accepts must satisfy the rules of §3–§4.
func FuzzParseRequest(f *testing.F) {
	seededFixture(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		req := &Request{ID: "0b6f7c1e-4a53-4f7e-9a6a-2f3c6f0e9d21"}
		out, err := parseRequest(body, req)
		if err != nil {
			if strings.ContainsRune(err.Error(), 0) {
				t.Fatalf("error carries a NUL: %q", err)
			}
			return
		}
		if !json.Valid(body) || !utf8.Valid(body) {
			t.Fatalf("accepted a body encoding/json rejects: %q", body)
		}
		if !isCanonicalUUID(out.id) || !req.Op.Valid() || ValidateTarget(req.Target) != nil || req.Actor.validate() != nil {
			t.Fatalf("accepted an invalid request: %+v", req)
		}
		if hasSecret(req.Op) != (out.secret.enc != nil) {
			t.Fatalf("secret presence does not fit op %s", req.Op)
		}
		if req.Op == wire.OpUnlock && !req.Unlock {
			t.Fatal("unlock without Unlock")
		}
	})
}

// FuzzOpen runs whole messages through the Opener with a valid signature
// over the fuzzed body: authenticated garbage must be a Rejection, never a
// panic, and never a request without its secret.
func FuzzOpen(f *testing.F) {
	fx := seededFixture(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		m := fx.resign(Message{MessageID: "0b6f7c1e-4a53-4f7e-9a6a-2f3c6f0e9d21", ContentType: RequestContentType}, string(body))
		req, err := fx.opener.Open(m, fx.now)
		if err != nil {
			var rej *Rejection
			if !errors.As(err, &rej) || rej.Request == nil && len(body) > 0 && len(body) <= MaxBodySize {
				t.Fatalf("error %v is not an authenticated rejection", err)
			}
			return
		}
		defer req.Destroy()
		if hasSecret(req.Op) && req.New.IsEmpty() {
			t.Fatalf("accepted %s without a password", req.Op)
		}
	})
}

// toAny converts a parsed value to what encoding/json produces with
// UseNumber, for a differential check.
func toAny(v jsonValue) any {
	switch v.kind {
	case jBool:
		return v.b
	case jNumber:
		return json.Number(v.s)
	case jString:
		return string(v.s)
	case jArray:
		out := []any{}
		for _, e := range v.elems {
			out = append(out, toAny(e))
		}
		return out
	case jObject:
		out := map[string]any{}
		for _, m := range v.members {
			out[m.name] = toAny(m.value)
		}
		return out
	}
	return nil
}

// FuzzStrictJSON checks the strict reader against encoding/json: whatever
// it accepts, encoding/json accepts with the same meaning. (The reverse does
// not hold by design: duplicates, lone surrogates and invalid UTF-8.)
func FuzzStrictJSON(f *testing.F) {
	seededFixture(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parseJSON(data)
		if err != nil {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("strict reader accepted what encoding/json rejects (%v): %q", err, data)
		}
		if got := toAny(v); !reflect.DeepEqual(got, want) {
			t.Fatalf("meaning differs for %q:\n got %#v\nwant %#v", data, got, want)
		}
	})
}

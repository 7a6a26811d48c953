package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestNeverPrinted(t *testing.T) {
	const pw = "Hunter2-Very-Secret"
	s := FromString(pw)
	type holder struct {
		P *Secret
		N string
	}
	h := holder{P: s, N: "x"}
	outs := []string{
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q %x %X %d", s, s, s, s, s, s, s, s),
		fmt.Sprintf("%+v %#v", h, h),
	}
	j, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j))
	var buf bytes.Buffer
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zap.DebugLevel))
	log.Info("x", zap.Any("any", s), zap.Object("obj", s), zap.Stringer("str", s), zap.Any("holder", h))
	_ = log.Sync()
	outs = append(outs, buf.String())
	for _, o := range outs {
		if strings.Contains(o, pw) || strings.Contains(o, fmt.Sprintf("%x", pw)) {
			t.Fatalf("secret leaked: %s", o)
		}
		if !strings.Contains(o, Redacted) {
			t.Fatalf("no redaction marker in %q", o)
		}
	}
	if s.Reveal() != pw {
		t.Fatal("Reveal lost the contents")
	}
}

func TestDestroyWipes(t *testing.T) {
	src := []byte("wipe-me")
	s := New(src)
	b := s.Bytes()
	s.Destroy()
	for _, c := range b {
		if c != 0 {
			t.Fatalf("byte not wiped: %q", b)
		}
	}
	if !s.IsEmpty() || s.Reveal() != "" {
		t.Fatal("destroyed secret not empty")
	}
	if string(src) != "wipe-me" {
		t.Fatal("New must copy, not alias, its input")
	}
	var nilS *Secret
	nilS.Destroy()
	if nilS.Len() != 0 || nilS.String() != Redacted {
		t.Fatal("nil secret misbehaves")
	}
}

func TestEqual(t *testing.T) {
	if !FromString("a").Equal(FromString("a")) || FromString("a").Equal(FromString("b")) {
		t.Fatal("Equal is wrong")
	}
}

package webhooks_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyhub/keyhub/internal/webhooks"
)

// The Standard Webhooks specification's own example (its reference
// libraries test the same vector): what any receiver library computes.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specBody      = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignMatchesTheSpecificationsExample(t *testing.T) {
	t.Parallel()
	got, err := webhooks.Sign(specSecret, specID, time.Unix(specTimestamp, 0), []byte(specBody))
	if err != nil || got != specSignature {
		t.Fatalf("Sign = %q, %v; want %q", got, err, specSignature)
	}
}

func specHeaders(sig string) http.Header {
	h := http.Header{}
	h.Set(webhooks.HeaderID, specID)
	h.Set(webhooks.HeaderTimestamp, strconv.Itoa(specTimestamp))
	h.Set(webhooks.HeaderSignature, sig)
	return h
}

func TestVerify(t *testing.T) {
	t.Parallel()
	at := time.Unix(specTimestamp, 0)
	other := webhooks.NewSecret()
	otherSig, _ := webhooks.Sign(other, specID, at, []byte(specBody))
	for _, tc := range []struct {
		name   string
		secret string
		header http.Header
		body   string
		now    time.Time
		want   error
	}{
		{"valid", specSecret, specHeaders(specSignature), specBody, at, nil},
		{"one of several (rotation)", specSecret, specHeaders(otherSig + " " + specSignature), specBody, at, nil},
		{"v2 ignored", specSecret, specHeaders("v2," + strings.TrimPrefix(specSignature, "v1,")), specBody, at, webhooks.ErrNoMatch},
		{"body changed", specSecret, specHeaders(specSignature), `{"test": 2432232315}`, at, webhooks.ErrNoMatch},
		{"other secret", other, specHeaders(specSignature), specBody, at, webhooks.ErrNoMatch},
		{"4 minutes late", specSecret, specHeaders(specSignature), specBody, at.Add(4 * time.Minute), nil},
		{"6 minutes late", specSecret, specHeaders(specSignature), specBody, at.Add(6 * time.Minute), webhooks.ErrBadTimestamp},
		{"6 minutes early", specSecret, specHeaders(specSignature), specBody, at.Add(-6 * time.Minute), webhooks.ErrBadTimestamp},
		{"no signature", specSecret, specHeaders(""), specBody, at, webhooks.ErrMissingHeaders},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := webhooks.Verify(tc.secret, tc.header, []byte(tc.body), tc.now); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	// Another id with the same signature is another message.
	h := specHeaders(specSignature)
	h.Set(webhooks.HeaderID, "msg_other")
	if err := webhooks.Verify(specSecret, h, []byte(specBody), at); !errors.Is(err, webhooks.ErrNoMatch) {
		t.Fatalf("another id: %v", err)
	}
}

func TestNewSecretIsUsableAndUnique(t *testing.T) {
	t.Parallel()
	a, b := webhooks.NewSecret(), webhooks.NewSecret()
	if a == b || !strings.HasPrefix(a, "whsec_") || len(a) != len("whsec_")+44 {
		t.Fatalf("secrets %q %q", a, b)
	}
	h := http.Header{}
	now := time.Now()
	if err := webhooks.SetHeaders(h, a, "id-1", now, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := webhooks.Verify(a, h, []byte("{}"), now); err != nil {
		t.Fatalf("own signature: %v", err)
	}
	if _, err := webhooks.Sign("not-a-secret", "id", now, nil); err == nil {
		t.Fatal("a secret without whsec_ signed")
	}
}

// FuzzVerify: whatever the headers, Verify neither panics nor accepts a
// message it did not sign; what Sign makes always verifies.
func FuzzVerify(f *testing.F) {
	f.Add(specID, strconv.Itoa(specTimestamp), specSignature, specBody)
	f.Add("x", "-1", "v1,,v1", "")
	f.Add("id", "99999999999999999999", "v1,AAAA v1 v2,=", "{}")
	at := time.Unix(specTimestamp, 0)
	f.Fuzz(func(t *testing.T, id, timestamp, signature, body string) {
		h := http.Header{}
		h.Set(webhooks.HeaderID, id)
		h.Set(webhooks.HeaderTimestamp, timestamp)
		h.Set(webhooks.HeaderSignature, signature)
		err := webhooks.Verify(specSecret, h, []byte(body), at)
		if err == nil {
			// Accepted: one of the signatures must decode to the MAC of
			// exactly this id, timestamp and body.
			ts, _ := strconv.ParseInt(h.Get(webhooks.HeaderTimestamp), 10, 64)
			want, _ := webhooks.Sign(specSecret, h.Get(webhooks.HeaderID), time.Unix(ts, 0), []byte(body))
			wantMAC, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(want, "v1,"))
			found := false
			for _, sig := range strings.Fields(h.Get(webhooks.HeaderSignature)) {
				got, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sig, "v1,"))
				found = found || (err == nil && strings.HasPrefix(sig, "v1,") && bytes.Equal(got, wantMAC))
			}
			if !found {
				t.Fatalf("accepted %q without its signature %q", h.Get(webhooks.HeaderSignature), want)
			}
		}
		if id != "" {
			signed := http.Header{}
			if err := webhooks.SetHeaders(signed, specSecret, h.Get(webhooks.HeaderID), at, []byte(body)); err != nil {
				t.Fatal(err)
			}
			if err := webhooks.Verify(specSecret, signed, []byte(body), at); err != nil && h.Get(webhooks.HeaderID) != "" {
				t.Fatalf("own signature refused: %v", err)
			}
		}
	})
}

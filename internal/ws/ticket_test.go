package ws

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestTicketRoundTrip(t *testing.T) {
	t.Parallel()
	signer := NewTicketSigner([]byte("0123456789abcdef0123456789abcdef"))
	now := time.Now()
	want := Ticket{
		ID: uuid.New(), UserID: uuid.New(), OwnerID: uuid.New(), KeyID: uuid.New(),
		ExpiresAt:           now.Add(TicketTTL).Truncate(time.Millisecond),
		CredentialExpiresAt: now.Add(time.Hour).Truncate(time.Millisecond),
	}
	raw := signer.Sign(want)
	if !strings.HasPrefix(raw, TicketPrefix) {
		t.Fatalf("ticket %q lacks its prefix", raw)
	}
	got, err := signer.Verify(raw, now)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if got.ID != want.ID || got.UserID != want.UserID || got.OwnerID != want.OwnerID || got.KeyID != want.KeyID ||
		!got.ExpiresAt.Equal(want.ExpiresAt) || !got.CredentialExpiresAt.Equal(want.CredentialExpiresAt) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// The last character carries unused bits: a second spelling of the same
	// ticket must not verify (found by FuzzTicketVerify).
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	lastValue := strings.IndexByte(alphabet, raw[len(raw)-1])
	respelled := raw[:len(raw)-1] + string(alphabet[lastValue^1])
	if _, err := signer.Verify(respelled, now); err == nil {
		t.Fatal("accepted a second spelling of the ticket")
	}
	if _, err := signer.Verify(raw, want.ExpiresAt); err == nil {
		t.Fatal("accepted at its expiry")
	}
	user := Ticket{ID: uuid.New(), ExpiresAt: now.Add(time.Second)}
	if got, err := signer.Verify(signer.Sign(user), now); err != nil || !got.CredentialExpiresAt.IsZero() || got.KeyID != uuid.Nil {
		t.Fatalf("user ticket: %+v %v", got, err)
	}
}

// Verify parses attacker-controlled query strings: it must never panic
// and never accept anything it did not sign.
func FuzzTicketVerify(f *testing.F) {
	signer := NewTicketSigner([]byte("0123456789abcdef0123456789abcdef"))
	now := time.Now()
	f.Add(signer.Sign(Ticket{ID: uuid.New(), ExpiresAt: now.Add(time.Minute)}))
	f.Add("wst_")
	f.Add("wst_!!!")
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := signer.Verify(raw, now)
		if err != nil {
			return
		}
		if signer.Sign(got) != raw {
			t.Fatalf("accepted %q, which re-signs differently", raw)
		}
	})
}

package handover_test

import (
	"bytes"
	"testing"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/handover"
)

func TestSealOpensOnlyInItsInboxForItsConnectionAndKey(t *testing.T) {
	t.Parallel()
	inbox, err := handover.NewInbox()
	if err != nil {
		t.Fatal(err)
	}
	other, err := handover.NewInbox()
	if err != nil {
		t.Fatal(err)
	}
	conn, key := uuid.New(), uuid.New()
	const secret = "mk_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH"
	sealed, err := handover.Seal(inbox.PublicKey(), conn, key, secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(secret)) || len(sealed) > handover.MaxSealed {
		t.Fatalf("sealed form (%d bytes) holds the secret or is too long", len(sealed))
	}
	got, err := inbox.Open(sealed, conn, key)
	if err != nil || got != secret {
		t.Fatalf("Open = %q, %v; want the secret", got, err)
	}
	for name, open := range map[string]func() (string, error){
		"another inbox":      func() (string, error) { return other.Open(sealed, conn, key) },
		"another connection": func() (string, error) { return inbox.Open(sealed, uuid.New(), key) },
		"another key id":     func() (string, error) { return inbox.Open(sealed, conn, uuid.New()) },
		"a flipped byte": func() (string, error) {
			bad := bytes.Clone(sealed)
			bad[len(bad)-1] ^= 1
			return inbox.Open(bad, conn, key)
		},
		"no inbox": func() (string, error) { return (*handover.Inbox)(nil).Open(sealed, conn, key) },
	} {
		if got, err := open(); err == nil || got != "" {
			t.Errorf("%s: Open = %q, %v; want an error", name, got, err)
		}
	}
	if _, err := handover.Seal([]byte("short"), conn, key, secret); err == nil {
		t.Error("Seal to a malformed public key succeeded")
	}
}

func FuzzOpen(f *testing.F) {
	inbox, err := handover.NewInbox()
	if err != nil {
		f.Fatal(err)
	}
	conn, key := uuid.New(), uuid.New()
	sealed, err := handover.Seal(inbox.PublicKey(), conn, key, "mk_x")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := inbox.Open(data, conn, key)
		if err == nil && !bytes.Equal(data, sealed) && got != "mk_x" {
			t.Fatalf("forged input opened to %q", got)
		}
	})
}

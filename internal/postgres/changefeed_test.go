package postgres_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/postgres"
)

func TestParseNotice(t *testing.T) {
	t.Parallel()
	key := `{"kind":"key","key_id":"4c6b1f7e-54c3-4c35-9c3e-5a0b5a1b6b0e","owner_id":"0d8c0a3e-3a8e-4c4a-8a4c-2f6f1c2b7a11","user_id":"8f1c2b7a-0d8c-4a3e-8a4c-2f6f3a8e4c4a","key_hash":"` +
		"aa00000000000000000000000000000000000000000000000000000000000000" + `","ended":false,"expires_at":1700000000.25,"sent_at":1700000000.5}`
	n, err := postgres.ParseNotice(key)
	if err != nil {
		t.Fatal(err)
	}
	change := n.KeyChange(nil)
	if change.Ended || change.ExpiresAt == nil || !change.ExpiresAt.Equal(time.Unix(1700000000, 250_000_000)) {
		t.Fatalf("key change %+v", change)
	}
	if lag := n.Lag(time.Unix(1700000001, 0)); lag != 500*time.Millisecond {
		t.Fatalf("lag %v", lag)
	}
	for _, bad := range []string{
		``, `null`, `[]`, `{"kind":"key"}`, `{"kind":"nope","owner_id":"0d8c0a3e-3a8e-4c4a-8a4c-2f6f1c2b7a11"}`,
		`{"kind":"event","owner_id":"0d8c0a3e-3a8e-4c4a-8a4c-2f6f1c2b7a11"}`, `{"kind":"owner","owner_id":"not-a-uuid"}`,
	} {
		if _, err := postgres.ParseNotice(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseNotice(f *testing.F) {
	f.Add(`{"kind":"owner","owner_id":"0d8c0a3e-3a8e-4c4a-8a4c-2f6f1c2b7a11","sent_at":1}`)
	f.Add(`{"kind":"event","event_id":7,"owner_id":"0d8c0a3e-3a8e-4c4a-8a4c-2f6f1c2b7a11"}`)
	f.Add(`{"kind":"key","key_id":"4c6b1f7e-54c3-4c35-9c3e-5a0b5a1b6b0e","owner_id":"0d8c0a3e-3a8e-4c4a-8a4c-2f6f1c2b7a11","key_hash":"aa00000000000000000000000000000000000000000000000000000000000000","expires_at":1e300}`)
	f.Fuzz(func(t *testing.T, payload string) {
		n, err := postgres.ParseNotice(payload)
		if err != nil {
			return
		}
		switch n.Kind {
		case postgres.NoticeKey:
			if n.KeyID == uuid.Nil || len(n.KeyHash) != 64 {
				t.Fatalf("key notice without ids: %+v", n)
			}
			_ = n.KeyChange(nil)
		case postgres.NoticeOwner, postgres.NoticeUser, postgres.NoticeEvent:
		default:
			t.Fatalf("unknown kind accepted: %q", n.Kind)
		}
		_ = n.Lag(time.Now())
		// What was accepted survives a round trip unchanged.
		raw, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		again, err := postgres.ParseNotice(string(raw))
		if err != nil || again.Kind != n.Kind || again.KeyID != n.KeyID || again.OwnerID != n.OwnerID || again.EventID != n.EventID {
			t.Fatalf("round trip: %+v → %+v (%v)", n, again, err)
		}
	})
}

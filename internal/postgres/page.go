package postgres

import (
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// Cursors hold the sort key of the last row of a page; they are opaque to
// clients (base64url JSON), so their shape can change without breaking them.
type keyCursor struct {
	CreatedAt time.Time `json:"t"`
	ID        uuid.UUID `json:"id"`
}

type eventCursor struct {
	CreatedAt time.Time `json:"t"`
	ID        int64     `json:"id"`
}

func encodeCursor(v any) string {
	raw, _ := json.Marshal(v) // cursor types always marshal
	return base64.RawURLEncoding.EncodeToString(raw)
}

func decodeCursor(s string, v any) error {
	if s == "" {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(raw, v) != nil {
		return keyhub.Errorf(keyhub.CodeInvalidCursor, "cursor is not one this API returned")
	}
	return nil
}

package wire

import (
	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/httpjson"
)

// The answers on every request's path encode themselves (httpjson.Appender)
// into the same bytes encoding/json writes for their api type, without its
// reflection and the allocation of each UUID's text: TestAnswersEncodeAs-
// EncodingJSON holds each to that, every field set and every field empty.

// MeJSON is GET /v1/me's answer.
type MeJSON api.Me

// AppendJSON appends the answer as encoding/json encodes an api.Me.
func (m *MeJSON) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"user_id":`...)
	b = httpjson.AppendUUID(b, m.UserID)
	b = append(b, `,"email":`...)
	b = httpjson.AppendString(b, m.Email)
	b = append(b, `,"owner_id":`...)
	b = httpjson.AppendUUID(b, m.OwnerID)
	b = append(b, `,"tier":`...)
	b = httpjson.AppendString(b, m.Tier)
	b = append(b, `,"auth_method":`...)
	b = httpjson.AppendString(b, m.AuthMethod)
	if m.KeyID != nil {
		b = append(b, `,"key_id":`...)
		b = httpjson.AppendUUID(b, *m.KeyID)
	}
	if m.KeyPrefix != "" {
		b = append(b, `,"key_prefix":`...)
		b = httpjson.AppendString(b, m.KeyPrefix)
	}
	b = append(b, `,"scopes":`...)
	b = httpjson.AppendStrings(b, m.Scopes)
	if m.ExpiresAt != nil {
		var err error
		b = append(b, `,"expires_at":`...)
		if b, err = httpjson.AppendTime(b, *m.ExpiresAt); err != nil {
			return b, err
		}
	}
	l := &m.Limits
	b = append(b, `,"limits":{"max_active_keys":`...)
	b = httpjson.AppendInt(b, int64(l.MaxActiveKeys))
	b = append(b, `,"max_connections":`...)
	b = httpjson.AppendInt(b, int64(l.MaxConnections))
	b = append(b, `,"messages_per_minute":`...)
	b = httpjson.AppendInt(b, int64(l.MessagesPerMinute))
	b = append(b, `,"max_message_bytes":`...)
	b = httpjson.AppendInt(b, l.MaxMessageBytes)
	b = append(b, `,"session_seconds":`...)
	b = httpjson.AppendInt(b, l.SessionSeconds)
	b = append(b, `,"requests_per_minute":`...)
	b = httpjson.AppendInt(b, int64(l.RequestsPerMinute))
	return append(b, "}}"...), nil
}

// KeyVerificationJSON is POST /v1/keys/verify's answer for a valid key.
type KeyVerificationJSON api.KeyVerification

// AppendJSON appends the answer as encoding/json encodes an
// api.KeyVerification.
func (v *KeyVerificationJSON) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"valid":`...)
	b = httpjson.AppendBool(b, v.Valid)
	b = append(b, `,"code":`...)
	b = httpjson.AppendString(b, v.Code)
	b = append(b, `,"key_id":`...)
	b = httpjson.AppendUUID(b, v.KeyID)
	b = append(b, `,"owner_id":`...)
	b = httpjson.AppendUUID(b, v.OwnerID)
	b = append(b, `,"user_id":`...)
	b = httpjson.AppendUUID(b, v.UserID)
	b = append(b, `,"name":`...)
	b = httpjson.AppendString(b, v.Name)
	b = append(b, `,"scopes":`...)
	b = httpjson.AppendStrings(b, v.Scopes)
	b = append(b, `,"tier":`...)
	b = httpjson.AppendString(b, v.Tier)
	b = append(b, `,"expires_at":`...)
	if v.ExpiresAt == nil {
		b = append(b, "null"...)
	} else {
		var err error
		if b, err = httpjson.AppendTime(b, *v.ExpiresAt); err != nil {
			return b, err
		}
	}
	b = append(b, `,"ratelimit":`...)
	if rl := v.RateLimit; rl == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"limit":`...)
		b = httpjson.AppendInt(b, int64(rl.Limit))
		b = append(b, `,"remaining":`...)
		b = httpjson.AppendInt(b, int64(rl.Remaining))
		b = append(b, `,"reset_seconds":`...)
		b = httpjson.AppendInt(b, rl.ResetSeconds)
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

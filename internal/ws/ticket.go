package ws

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// TicketTTL is how long a ticket can be presented after it was issued.
const TicketTTL = 30 * time.Second

// TicketPrefix starts every ticket, so that one pasted in the wrong place
// is recognisable (and greppable by secret scanners).
const TicketPrefix = "wst_"

// Ticket is what a signed ticket carries: enough to re-resolve the
// principal as it is when the ticket is used, not as it was when issued.
type Ticket struct {
	ID      uuid.UUID
	UserID  uuid.UUID
	OwnerID uuid.UUID
	KeyID   uuid.UUID // uuid.Nil for a user (JWT) ticket
	// ExpiresAt is when the ticket stops being accepted.
	ExpiresAt time.Time
	// CredentialExpiresAt is when the credential it was issued for ends
	// (the token's exp); zero for none. A JWT session must not outlive it.
	CredentialExpiresAt time.Time
}

const (
	ticketPayloadLen = 4*16 + 2*8
	ticketMACLen     = sha256.Size
)

var errInvalidTicket = keyhub.Errorf(keyhub.CodeInvalidTicket, "the ticket is invalid, expired or already used; request a new one from POST /v1/ws/tickets")

// TicketSigner signs and verifies tickets with the server secret.
type TicketSigner struct{ secret []byte }

// NewTicketSigner returns a signer keyed with secret. Processes that share
// a database must share the secret, or a ticket issued by one is refused
// by another.
func NewTicketSigner(secret []byte) TicketSigner { return TicketSigner{secret: secret} }

// Sign encodes t as "wst_" + base64url(payload || HMAC-SHA256(payload)).
func (s TicketSigner) Sign(t Ticket) string {
	payload := make([]byte, 0, ticketPayloadLen+ticketMACLen)
	payload = append(payload, t.ID[:]...)
	payload = append(payload, t.UserID[:]...)
	payload = append(payload, t.OwnerID[:]...)
	payload = append(payload, t.KeyID[:]...)
	payload = binary.BigEndian.AppendUint64(payload, uint64(t.ExpiresAt.UnixMilli()))
	var credExp int64
	if !t.CredentialExpiresAt.IsZero() {
		credExp = t.CredentialExpiresAt.UnixMilli()
	}
	payload = binary.BigEndian.AppendUint64(payload, uint64(credExp))
	payload = append(payload, s.mac(payload[:ticketPayloadLen])...)
	return TicketPrefix + base64.RawURLEncoding.EncodeToString(payload)
}

// Verify checks the signature and the expiry at now. Single use is the
// caller's job (it needs the database).
func (s TicketSigner) Verify(raw string, now time.Time) (Ticket, error) {
	enc, ok := strings.CutPrefix(raw, TicketPrefix)
	if !ok || len(enc) != base64.RawURLEncoding.EncodedLen(ticketPayloadLen+ticketMACLen) {
		return Ticket{}, errInvalidTicket
	}
	// Strict: without it, the unused bits of the last character could vary
	// and one ticket would have several spellings.
	buf, err := base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil || len(buf) != ticketPayloadLen+ticketMACLen {
		return Ticket{}, errInvalidTicket
	}
	payload, mac := buf[:ticketPayloadLen], buf[ticketPayloadLen:]
	// Signature first: a forged ticket is refused the same way whatever
	// expiry it claims.
	if !hmac.Equal(mac, s.mac(payload)) {
		return Ticket{}, errInvalidTicket
	}
	var t Ticket
	copy(t.ID[:], payload[0:16])
	copy(t.UserID[:], payload[16:32])
	copy(t.OwnerID[:], payload[32:48])
	copy(t.KeyID[:], payload[48:64])
	t.ExpiresAt = time.UnixMilli(int64(binary.BigEndian.Uint64(payload[64:72])))
	if credExp := int64(binary.BigEndian.Uint64(payload[72:80])); credExp != 0 {
		t.CredentialExpiresAt = time.UnixMilli(credExp)
	}
	if !now.Before(t.ExpiresAt) {
		return Ticket{}, errInvalidTicket
	}
	return t, nil
}

func (s TicketSigner) mac(payload []byte) []byte {
	h := hmac.New(sha256.New, s.secret)
	// A domain label, so the secret signing anything else later can never
	// produce a valid ticket.
	h.Write([]byte("keyhub ws ticket v1\x00"))
	h.Write(payload)
	return h.Sum(nil)
}

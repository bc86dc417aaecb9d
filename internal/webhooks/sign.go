// Package webhooks sends an owner's audit events to its HTTPS endpoints:
// signing per the Standard Webhooks specification, an HTTP client that
// refuses to reach internal addresses (SSRF), the service behind the
// /v1/webhooks routes, and the delivery loop that drains the outbox with
// retries. It talks to the database only through its Store interface.
package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers (https://www.standardwebhooks.com).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every signing secret; what follows is the base64
// of the HMAC key.
const SecretPrefix = "whsec_"

// secretBytes is the HMAC key's length: the specification asks for 24 to
// 64 bytes.
const secretBytes = 32

// NewSecret returns a fresh signing secret, whsec_ + base64 of 32 random
// bytes.
func NewSecret() string {
	key := make([]byte, secretBytes)
	_, _ = rand.Read(key) // never fails (crypto/rand panics instead)
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// secretKey is the HMAC key of a whsec_ secret.
func secretKey(secret string) ([]byte, error) {
	encoded, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, errors.New("a webhook secret starts with " + SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil || len(key) == 0 {
		return nil, errors.New("a webhook secret is " + SecretPrefix + " followed by base64")
	}
	return key, nil
}

// Sign is the webhook-signature value of a message: "v1," and the base64
// HMAC-SHA256, keyed by the secret, of "id.timestamp.body".
func Sign(secret, id string, timestamp time.Time, body []byte) (string, error) {
	key, err := secretKey(secret)
	if err != nil {
		return "", err
	}
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, id, timestamp.Unix(), body)), nil
}

func mac(key []byte, id string, unix int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(nil, unix, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// SetHeaders sets the three Standard Webhooks headers of a message.
func SetHeaders(h http.Header, secret, id string, timestamp time.Time, body []byte) error {
	sig, err := Sign(secret, id, timestamp, body)
	if err != nil {
		return err
	}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(timestamp.Unix(), 10))
	h.Set(HeaderSignature, sig)
	return nil
}

// Tolerance is how far a message's timestamp may be from the receiver's
// clock: the specification's five minutes, against replays.
const Tolerance = 5 * time.Minute

// Errors of Verify.
var (
	ErrMissingHeaders = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature")
	ErrBadTimestamp   = errors.New("webhook: timestamp is not Unix seconds, or is more than 5 minutes off")
	ErrNoMatch        = errors.New("webhook: no signature matches")
)

// Verify is what a receiver does with a message: the headers must be
// there, the timestamp within Tolerance of now, and one of the
// space-separated v1 signatures (there are several while a secret is
// rotated) must match the body. Comparisons are constant-time.
func Verify(secret string, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || ts == "" || sigs == "" {
		return ErrMissingHeaders
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || unix < 0 {
		return ErrBadTimestamp
	}
	if d := now.Sub(time.Unix(unix, 0)); d > Tolerance || d < -Tolerance {
		return ErrBadTimestamp
	}
	key, err := secretKey(secret)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	want := mac(key, id, unix, body)
	for _, sig := range strings.Fields(sigs) {
		version, encoded, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(encoded)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrNoMatch
}

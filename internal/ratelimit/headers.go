package ratelimit

import (
	"net/http"
	"strconv"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// Response headers of draft-ietf-httpapi-ratelimit-headers-10 (structured
// fields): RateLimit-Policy names the policy with its quota q and window w
// in seconds; RateLimit gives what remains (r) and the seconds until the
// quota is whole again (t). Retry-After (RFC 9110) accompanies a refusal.
const (
	HeaderPolicy     = "RateLimit-Policy"
	HeaderRateLimit  = "RateLimit"
	HeaderRetryAfter = "Retry-After"
)

// The header names as Go's http.Header keys them (Header.Set would
// canonicalise to these), for handlers that assign the map directly to
// skip the canonicalisation; on the wire header names are case-insensitive.
var (
	HeaderKeyPolicy    = http.CanonicalHeaderKey(HeaderPolicy)
	HeaderKeyRateLimit = http.CanonicalHeaderKey(HeaderRateLimit)
)

// PolicyHeader is the RateLimit-Policy value of a policy:
// `"<name>";q=<burst>;w=<seconds>`.
func PolicyHeader(name string, l Limit) string {
	var buf [64]byte
	b := strconv.AppendQuote(buf[:0], name)
	b = append(b, ";q="...)
	b = strconv.AppendInt(b, int64(l.Burst), 10)
	b = append(b, ";w="...)
	b = strconv.AppendInt(b, retrySeconds(l.Window()), 10)
	return string(b)
}

// RateLimitHeader is the RateLimit value of d:
// `"<name>";r=<remaining>;t=<seconds>`.
func (d Decision) RateLimitHeader() string {
	var buf [64]byte
	b := strconv.AppendQuote(buf[:0], d.Policy)
	b = append(b, ";r="...)
	b = strconv.AppendInt(b, int64(d.Remaining), 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, d.ResetSeconds(), 10)
	return string(b)
}

// SetRefusalHeaders sets Retry-After and the RateLimit headers of a
// refusal.
func SetRefusalHeaders(h http.Header, d Decision) {
	h.Set(HeaderRetryAfter, strconv.FormatInt(d.RetryAfterSeconds(), 10))
	h.Set(HeaderPolicy, PolicyHeader(d.Policy, d.Limit))
	h.Set(HeaderRateLimit, d.RateLimitHeader())
}

// AuthFailureMessage says why an address over its failed-authentication
// limit is refused.
const AuthFailureMessage = "too many failed authentications from this address"

// RefusalError is the RATE_LIMITED error of a refusal; why says which
// limit, for the client.
func RefusalError(d Decision, why string) error {
	return keyhub.Errorf(keyhub.CodeRateLimited, "%s; retry in %d s", why, d.RetryAfterSeconds())
}

// authFailureCodes are the answers that count as a failed authentication:
// a credential was presented and it was wrong.
var authFailureCodes = map[keyhub.Code]bool{
	keyhub.CodeInvalidToken:   true,
	keyhub.CodeExpiredToken:   true,
	keyhub.CodeNotUserSession: true,
	keyhub.CodeInvalidAPIKey:  true,
	keyhub.CodeUnknownAPIKey:  true,
	keyhub.CodeKeyRevoked:     true,
	keyhub.CodeKeyExpired:     true,
	keyhub.CodeKeyDisabled:    true,
	keyhub.CodeInvalidTicket:  true,
}

// IsAuthFailure reports whether err is a failed authentication, which
// spends from the client address's failed-authentication bucket.
func IsAuthFailure(err error) bool { return authFailureCodes[keyhub.ErrorCode(err)] }

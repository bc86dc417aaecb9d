package keyhub

import (
	"errors"
	"fmt"
)

// Code is a stable, upper-case error code that clients can branch on.
// The HTTP layer maps each code to a status in one place.
type Code string

// Error codes. Their strings are part of the public API: never rename one.
const (
	CodeInternal         Code = "INTERNAL"
	CodeInvalidJSON      Code = "INVALID_JSON"
	CodeBodyTooLarge     Code = "BODY_TOO_LARGE"
	CodeValidation       Code = "VALIDATION_FAILED"
	CodeInvalidScope     Code = "INVALID_SCOPE"
	CodeInvalidCursor    Code = "INVALID_CURSOR"
	CodeNotFound         Code = "NOT_FOUND"
	CodeMethodNotAllowed Code = "METHOD_NOT_ALLOWED"

	CodeMissingCredentials   Code = "MISSING_CREDENTIALS"
	CodeAmbiguousCredentials Code = "AMBIGUOUS_CREDENTIALS"
	CodeInvalidToken         Code = "INVALID_TOKEN"
	CodeExpiredToken         Code = "EXPIRED_TOKEN"
	CodeNotUserSession       Code = "NOT_A_USER_SESSION"
	CodeInvalidAPIKey        Code = "INVALID_API_KEY"
	CodeUnknownAPIKey        Code = "UNKNOWN_API_KEY"
	CodeKeyRevoked           Code = "KEY_REVOKED"
	CodeKeyExpired           Code = "KEY_EXPIRED"
	CodeAuthNotConfigured    Code = "AUTH_NOT_CONFIGURED"
	CodeInvalidTicket        Code = "INVALID_TICKET"
	// CodeInvalidSignature refuses a leak report that GitHub did not sign
	// (POST /v1/leaks/github).
	CodeInvalidSignature Code = "INVALID_SIGNATURE"
	// CodeKeyDisabled refuses a key that is disabled, or was obtained
	// through a key that is (401): enabling it restores it.
	CodeKeyDisabled Code = "KEY_DISABLED"
	// CodeIPNotAllowed refuses a key used from outside its allowed_cidrs (403).
	CodeIPNotAllowed Code = "IP_NOT_ALLOWED"

	CodeInsufficientScope   Code = "INSUFFICIENT_SCOPE"
	CodeUserSessionRequired Code = "USER_SESSION_REQUIRED"
	// CodeAnonymousUser refuses an anonymous sign-in (Supabase's
	// is_anonymous) what ANONYMOUS_USERS does not let it do.
	CodeAnonymousUser    Code = "ANONYMOUS_USER"
	CodeOriginNotAllowed Code = "ORIGIN_NOT_ALLOWED"
	// CodeOperatorRequired refuses a tenant's credential where only the
	// operator's is accepted (POST /v1/keys/verify).
	CodeOperatorRequired Code = "OPERATOR_CREDENTIAL_REQUIRED"

	CodeKeyLimitReached     Code = "KEY_LIMIT_REACHED"
	CodeKeyAlreadyExists    Code = "KEY_ALREADY_EXISTS"
	CodeKeyNotActive        Code = "KEY_NOT_ACTIVE"
	CodeKeyAlreadyRefreshed Code = "KEY_ALREADY_REFRESHED"
	// CodeLifetimeExceedsPolicy refuses an expiry later than the owner's
	// max_key_lifetime allows (400).
	CodeLifetimeExceedsPolicy Code = "KEY_LIFETIME_EXCEEDS_POLICY"
	// CodeNoOpenConnections refuses a refresh that would deliver the new
	// secret to the key's connections when none is open: the secret
	// would reach nobody.
	CodeNoOpenConnections Code = "NO_OPEN_CONNECTIONS"
	// CodeWebhookLimitReached refuses a webhook past MaxWebhooksPerOwner.
	CodeWebhookLimitReached Code = "WEBHOOK_LIMIT_REACHED"
	// CodeWebhookURLNotAllowed refuses a webhook endpoint whose host
	// resolves to an address keyhub will not call (loopback, private,
	// link-local, metadata...): see WEBHOOKS_ALLOWED_NETWORKS.
	CodeWebhookURLNotAllowed Code = "WEBHOOK_URL_NOT_ALLOWED"

	CodeTooManyConnections Code = "TOO_MANY_CONNECTIONS"
	CodeRateLimited        Code = "RATE_LIMITED"

	CodeNotReady        Code = "NOT_READY"
	CodeUpgradeRequired Code = "UPGRADE_REQUIRED"

	// CodeUnavailable means a dependency (the database) did not answer:
	// the request may succeed if retried after Retry-After.
	CodeUnavailable Code = "UNAVAILABLE"

	// CodeUpstreamUnavailable means the gateway could not reach the
	// product behind a route (502, with Retry-After); CodeUpstreamTimeout
	// that it did not answer in time (504).
	CodeUpstreamUnavailable Code = "UPSTREAM_UNAVAILABLE"
	CodeUpstreamTimeout     Code = "UPSTREAM_TIMEOUT"
)

// Error is the one error type that crosses layers. Message is safe to show
// to the client; Err is the internal cause, logged and never sent.
type Error struct {
	Code    Code
	Message string
	// Reason is a stable lower_snake_case label, finer than Code, where one
	// code covers several causes (which check refused a credential): logged
	// and counted in metrics, never sent. Empty when the code says it all.
	Reason string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error with a client-safe message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Internal wraps an unexpected failure: the client sees a generic message,
// the logs see err.
func Internal(err error) *Error {
	return &Error{Code: CodeInternal, Message: "internal error", Err: err}
}

// Unavailable wraps a failure to reach a dependency (the database): the
// client sees 503 UNAVAILABLE and may retry, the logs see err.
func Unavailable(err error) *Error {
	return &Error{Code: CodeUnavailable, Message: "the service is temporarily unavailable; retry later", Err: err}
}

// ErrorCode returns the code of err, or CodeInternal for any error that is
// not an *Error.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the client-safe message of err; errors that are not
// an *Error never reveal their text.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != CodeInternal {
		return e.Message
	}
	return "internal error"
}

// The answers to a key that stopped working, shared by verification (the
// cache) and by writes, which re-check the acting key in their transaction.
// Built once: the rejection path must stay cheap under a flood.
var (
	ErrUnknownKey = Errorf(CodeUnknownAPIKey, "API key is not known")
	ErrKeyRevoked = Errorf(CodeKeyRevoked, "API key has been revoked")
	ErrKeyExpired = Errorf(CodeKeyExpired, "API key has expired")
	// ErrKeyDisabled also answers a key obtained through a disabled one.
	ErrKeyDisabled  = Errorf(CodeKeyDisabled, "API key is disabled (it, or the key it was obtained through): an owner can enable it again")
	ErrIPNotAllowed = Errorf(CodeIPNotAllowed, "this API key may not be used from this address (its allowed_cidrs)")
)

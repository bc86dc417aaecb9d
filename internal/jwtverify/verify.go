package jwtverify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// Token verification: parsing a token, checking its signature and claims,
// and saying precisely why one is refused (the Reason of INVALID_TOKEN).
// Which key verifies a token is keyfunc.go's answer.

// The roles Supabase puts in the tokens it signs.
const (
	roleAuthenticated = "authenticated"
	roleAnon          = "anon"
	roleServiceRole   = "service_role"
)

// tokenClaims is what a token's payload is decoded into.
type tokenClaims struct {
	jwt.RegisteredClaims
	Email       string `json:"email"`
	Role        string `json:"role"`
	SessionID   string `json:"session_id"`
	IsAnonymous bool   `json:"is_anonymous"`
}

// Verify checks token and returns its claims, or a *keyhub.Error:
// AUTH_NOT_CONFIGURED, INVALID_TOKEN, EXPIRED_TOKEN (only for a token whose
// signature is valid) or NOT_A_USER_SESSION (a validly signed anon or
// service_role token). An INVALID_TOKEN error's Reason says which check
// refused the token.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	if !v.configured {
		return Claims{}, keyhub.Errorf(keyhub.CodeAuthNotConfigured, "token authentication is not configured")
	}
	if len(token) > MaxTokenLength {
		return Claims{}, invalid(reasonTooLong, "token is too long", nil)
	}
	if token == "" {
		return Claims{}, invalid(reasonEmpty, "token is empty", nil)
	}

	var tc tokenClaims
	parsed, err := v.parser.ParseWithClaims(token, &tc, func(t *jwt.Token) (any, error) {
		return v.keyFor(ctx, t)
	})
	if err != nil {
		// jwt checks the signature before the claims, and wraps
		// ErrTokenInvalidClaims only around claim errors: without it the
		// token is malformed, unverifiable or forged, and none of its claims
		// (exp included) can be trusted.
		if !errors.Is(err, jwt.ErrTokenInvalidClaims) || errors.Is(err, jwt.ErrTokenSignatureInvalid) {
			return Claims{}, v.unverified(parsed, err)
		}
		// Validly signed by us. An anon or service_role key has no aud or
		// another iss, so this comes before the claim errors.
		if notUserSession(&tc) {
			return Claims{}, keyhub.Errorf(keyhub.CodeNotUserSession, "token is not a user session")
		}
		if onlyExpired(err) {
			e := keyhub.Errorf(keyhub.CodeExpiredToken, "token has expired")
			e.Err = err
			return Claims{}, e
		}
		reason, msg := v.claimsMessage(err, &tc)
		return Claims{}, invalid(reason, msg, err)
	}

	if notUserSession(&tc) {
		return Claims{}, keyhub.Errorf(keyhub.CodeNotUserSession, "token is not a user session")
	}
	// Supabase user sessions always carry role "authenticated" (anonymous
	// sign-ins too). A missing role, or any other role (say a custom one from
	// an access-token hook), is not a token we know how to authorize, so it
	// is INVALID_TOKEN rather than a guess.
	if tc.Role == "" {
		return Claims{}, invalid(reasonMissingClaim, "token lacks a required claim (role)", nil)
	}
	if tc.Role != roleAuthenticated {
		return Claims{}, invalid(reasonWrongRole, fmt.Sprintf("token role %q is not accepted", clip(tc.Role)), nil)
	}
	if tc.Subject == "" {
		return Claims{}, invalid(reasonMissingClaim, "token lacks a required claim (sub)", nil)
	}
	// Only the canonical 36-character form: uuid.Parse would also take the
	// urn:uuid:, braced and undashed spellings of the same id.
	if len(tc.Subject) != 36 {
		return Claims{}, invalid(reasonBadSubject, "token subject is not a user id", nil)
	}
	sub, err := uuid.Parse(tc.Subject)
	if err != nil || sub == uuid.Nil {
		return Claims{}, invalid(reasonBadSubject, "token subject is not a user id", err)
	}
	return Claims{
		Subject:   sub,
		Email:     tc.Email,
		Role:      tc.Role,
		SessionID: tc.SessionID,
		ExpiresAt: tc.ExpiresAt.Time, // non-nil: WithExpirationRequired
		Anonymous: tc.IsAnonymous,
	}, nil
}

// Why a token was refused, finer than its code: the Reason of the
// INVALID_TOKEN errors Verify returns, logged at DEBUG and counted in
// keyhub_auth_outcomes_total. A fixed set (never a value from the token),
// listed in the README.
const (
	reasonTooLong        = "too_long"
	reasonEmpty          = "empty"
	reasonMalformed      = "malformed"        // not three base64url parts of JSON
	reasonAlgNotAccepted = "alg_not_accepted" // an alg no configured key issues
	reasonBadSignature   = "bad_signature"
	reasonUnknownKID     = "unknown_kid"           // no configured or published key (the JWKS was checked)
	reasonKIDThrottled   = "unknown_kid_throttled" // refused without a fetch: the JWKS fetch budget is spent
	reasonJWKSDown       = "jwks_unavailable"      // the fetch for an unknown kid failed or took too long
	reasonBadHeader      = "bad_header"            // crit, or a kid that is not a string
	reasonWrongIssuer    = "wrong_issuer"
	reasonWrongAudience  = "wrong_audience"
	reasonMissingClaim   = "missing_claim"
	reasonNotYetValid    = "not_yet_valid"    // nbf in the future
	reasonIssuedInFuture = "issued_in_future" // iat in the future
	reasonBadClaims      = "bad_claims"       // a claim of the wrong type, or several failures
	reasonWrongRole      = "wrong_role"
	reasonBadSubject     = "bad_subject"
)

// unverified explains a token whose signature could not be checked or did
// not verify: none of its claims can be trusted.
func (v *Verifier) unverified(parsed *jwt.Token, err error) *keyhub.Error {
	switch {
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		var unknown *unknownKeyError
		if errors.As(err, &unknown) {
			reason := reasonUnknownKID
			var spent *refreshBudgetSpentError
			var failed *fetchFailedError
			switch {
			case errors.As(err, &spent):
				reason = reasonKIDThrottled
			case errors.As(err, &failed), errors.Is(err, errFetchWaitOver), errors.Is(err, context.DeadlineExceeded):
				reason = reasonJWKSDown
			}
			return invalid(reason, v.unknownKeyMessage(unknown), err)
		}
		return invalid(reasonBadHeader, "token header is not supported (crit, or a kid that is not a string)", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		// jwt refuses an alg outside the allow-list with this same error,
		// before any key is looked at; parsed is set on both paths.
		if parsed != nil && parsed.Method != nil && !slices.Contains(v.methods, parsed.Method.Alg()) {
			return invalid(reasonAlgNotAccepted, fmt.Sprintf("token alg %q is not accepted", clip(parsed.Method.Alg())), err)
		}
		return invalid(reasonBadSignature, "token signature is invalid", err)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return invalid(reasonMalformed, "token is malformed", err)
	}
	return invalid(reasonBadClaims, "token is invalid", err)
}

// unknownKeyMessage says that no configured key verifies the token, and
// why when that is safe to say (the kid is unknown).
func (v *Verifier) unknownKeyMessage(unknown *unknownKeyError) string {
	msg := "token signing key is unknown"
	if unknown.kid != "" {
		msg = fmt.Sprintf("token signing key is unknown: no %s key with kid %q", unknown.alg, clip(unknown.kid))
	}
	if v.unknownKeyHint != "" {
		msg += " (" + v.unknownKeyHint + ")"
	}
	return msg
}

// claimsMessage says which claim of a validly signed token failed, and its
// reason. The expected values are configuration, and the token's own are
// the caller's: neither is a secret, and both help whoever set the token up.
func (v *Verifier) claimsMessage(err error, tc *tokenClaims) (reason, msg string) {
	switch {
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return reasonMissingClaim, missingClaimsMessage(v.missingClaims(tc))
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return reasonWrongIssuer, fmt.Sprintf("token iss %q does not match the expected issuer %q", clip(tc.Issuer), v.issuer)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		got := make([]string, 0, len(tc.Audience))
		for _, aud := range tc.Audience {
			got = append(got, clip(aud))
		}
		return reasonWrongAudience, fmt.Sprintf("token aud %q does not include the expected audience %q", got, v.audience)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return reasonNotYetValid, "token is not valid yet (nbf is in the future)"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return reasonIssuedInFuture, "token was issued in the future (iat): check the clocks"
	}
	return reasonBadClaims, "token claims are invalid"
}

// missingClaims names the claims the parser requires that tc lacks, read
// from the claims themselves: jwt's error says only that one is missing.
func (v *Verifier) missingClaims(tc *tokenClaims) []string {
	var missing []string
	if tc.Issuer == "" && v.issuer != "" {
		missing = append(missing, "iss")
	}
	if len(tc.Audience) == 0 || len(tc.Audience) == 1 && tc.Audience[0] == "" {
		missing = append(missing, "aud")
	}
	if tc.ExpiresAt == nil {
		missing = append(missing, "exp")
	}
	return missing
}

// missingClaimsMessage says which required claims a token lacks.
func missingClaimsMessage(missing []string) string {
	switch len(missing) {
	case 0:
		return "token lacks a required claim"
	case 1:
		return "token lacks a required claim (" + missing[0] + ")"
	}
	return "token lacks required claims (" + strings.Join(missing, ", ") + ")"
}

// clip bounds a value echoed from a token.
func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

// notUserSession reports whether a validly signed token is one of the
// project's API keys (anon, service_role) rather than a user's session.
func notUserSession(tc *tokenClaims) bool {
	return tc.Role == roleAnon || tc.Role == roleServiceRole || slices.Contains(tc.Audience, roleAnon)
}

// onlyExpired reports whether expiry is the only claim the token fails.
func onlyExpired(err error) bool {
	if !errors.Is(err, jwt.ErrTokenExpired) {
		return false
	}
	for _, other := range []error{
		jwt.ErrTokenInvalidAudience,
		jwt.ErrTokenInvalidIssuer,
		jwt.ErrTokenNotValidYet,
		jwt.ErrTokenUsedBeforeIssued,
		jwt.ErrTokenRequiredClaimMissing,
		jwt.ErrTokenInvalidSubject,
		jwt.ErrTokenInvalidId,
		jwt.ErrInvalidType,
	} {
		if errors.Is(err, other) {
			return false
		}
	}
	return true
}

// invalid builds an INVALID_TOKEN error with its reason, keeping the cause
// for the logs.
func invalid(reason, msg string, cause error) *keyhub.Error {
	return &keyhub.Error{Code: keyhub.CodeInvalidToken, Message: msg, Reason: reason, Err: cause}
}

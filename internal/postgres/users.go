package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/keyhub/keyhub/internal/dbgen"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// ProvisionUser returns the principal of the user with the given Supabase
// id, creating the user and its owner (tenant) the first time it is seen.
// Concurrent first requests of one user create exactly one of each: they
// serialise on an advisory lock of the user id and re-check under it.
//
// The email is the token's claim, not checked by anyone: it is made
// storable (valid UTF-8, no control characters, at most maxEmailChars) so
// that no claim can make a user impossible to provision.
func (s *Store) ProvisionUser(ctx context.Context, userID uuid.UUID, email string) (keyhub.Principal, time.Time, error) {
	email = storableText(email, maxEmailChars)
	row, err := s.q.GetUserPrincipal(ctx, s.pool, userID)
	if err == nil {
		return s.userPrincipal(row), row.LastSeenAt, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return keyhub.Principal{}, time.Time{}, dbError(err, "user")
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if err := s.q.LockUserProvisioning(ctx, tx, userID); err != nil {
			return err
		}
		row, err = s.q.GetUserPrincipal(ctx, tx, userID)
		if err == nil || !errors.Is(err, pgx.ErrNoRows) {
			return err // found by a concurrent request, or a real error
		}
		owner, err := s.q.InsertOwner(ctx, tx, ownerName(userID, email))
		if err != nil {
			return fmt.Errorf("insert owner: %w", err)
		}
		if err := s.q.InsertUser(ctx, tx, dbgen.InsertUserParams{ID: userID, Email: email, DefaultOwnerID: owner.ID}); err != nil {
			return fmt.Errorf("insert user: %w", err)
		}
		row = dbgen.GetUserPrincipalRow{ID: userID, Email: email, DefaultOwnerID: owner.ID, Tier: owner.Tier, LastSeenAt: time.Now()}
		return nil
	})
	if err != nil {
		return keyhub.Principal{}, time.Time{}, dbError(err, "provision user")
	}
	return s.userPrincipal(row), row.LastSeenAt, nil
}

// maxEmailChars is the users.email column's limit, in characters (an
// address is at most 254 octets by RFC 5321, but the claim is not checked).
const maxEmailChars = 320

// storableText makes untrusted text safe to store and display: invalid
// UTF-8 becomes U+FFFD, control characters (NUL, which PostgreSQL text
// cannot hold, among them) are dropped, and the result is cut to at most
// maxChars characters.
func storableText(s string, maxChars int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	n := 0
	for _, r := range s {
		if unicode.IsControl(r) {
			continue
		}
		if n == maxChars {
			break
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// ownerName names a new tenant after its first user.
func ownerName(userID uuid.UUID, email string) string {
	if email != "" {
		return email
	}
	return "user " + userID.String()
}

// userPrincipal is a dashboard user: it holds every scope, product scopes
// included.
func (s *Store) userPrincipal(row dbgen.GetUserPrincipalRow) keyhub.Principal {
	return keyhub.Principal{
		UserID:  row.ID,
		OwnerID: row.DefaultOwnerID,
		Tier:    keyhub.Tier(row.Tier),
		Email:   row.Email,
		Method:  keyhub.AuthJWT,
		Scopes:  s.scopes.All(),
	}
}

// TouchUsers records when users were last seen, like TouchKeys: it never
// waits for a row lock and returns the ids it skipped.
func (s *Store) TouchUsers(ctx context.Context, ids []uuid.UUID, seenAt []time.Time) ([]uuid.UUID, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	skipped, err := s.q.TouchUsers(ctx, s.pool, dbgen.TouchUsersParams{Ids: ids, SeenAts: seenAt})
	if err != nil {
		return nil, fmt.Errorf("touch users: %w", err)
	}
	return skipped, nil
}

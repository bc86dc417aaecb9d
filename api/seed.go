package api

import (
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// The seed service's single-key API, in its camelCase.

// SeedKeyInfo answers GET /api/v1/auth/api-keys.
type SeedKeyInfo struct {
	ID         uuid.UUID  `json:"id"`
	Prefix     string     `json:"prefix"`
	Name       string     `json:"name"`
	LastUsedAt *time.Time `json:"lastUsedAt"`
	CreatedAt  time.Time  `json:"createdAt"`
}

// SeedKeyInfoFrom describes a key the seed's way.
func SeedKeyInfoFrom(k keyhub.Key) SeedKeyInfo {
	return SeedKeyInfo{ID: k.ID, Prefix: k.Prefix, Name: k.Name, LastUsedAt: utc(k.LastUsedAt), CreatedAt: Timestamp(k.CreatedAt)}
}

// SeedCreatedKey answers POST /api/v1/auth/api-keys.
type SeedCreatedKey struct {
	ID        uuid.UUID `json:"id"`
	Key       string    `json:"key"`
	Prefix    string    `json:"prefix"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
}

// SeedCreatedKeyFrom describes a new key with its secret.
func SeedCreatedKeyFrom(k keyhub.Key, secret string) SeedCreatedKey {
	return SeedCreatedKey{ID: k.ID, Key: secret, Prefix: k.Prefix, Name: k.Name, CreatedAt: Timestamp(k.CreatedAt)}
}

// SeedRefreshedKey answers POST /api/v1/auth/api-keys/refresh.
type SeedRefreshedKey struct {
	SeedCreatedKey
	PreviousKeyRevoked bool `json:"previousKeyRevoked"`
}

// SeedRevoked answers DELETE /api/v1/auth/api-keys.
type SeedRevoked struct {
	Message          string `json:"message"`
	RevokedKeyPrefix string `json:"revokedKeyPrefix"`
}

// SeedKeyRequest is the optional body of the seed's create and refresh.
type SeedKeyRequest struct {
	Name *string `json:"name"`
}

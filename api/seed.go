package api

import (
	"time"

	"github.com/google/uuid"
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

// SeedCreatedKey answers POST /api/v1/auth/api-keys.
type SeedCreatedKey struct {
	ID        uuid.UUID `json:"id"`
	Key       string    `json:"key"`
	Prefix    string    `json:"prefix"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
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

package auth

import (
	"context"

	"github.com/keyhub/keyhub/internal/keyhub"
)

type principalKey struct{}

// NewContext returns ctx carrying the authenticated principal.
func NewContext(ctx context.Context, p *keyhub.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the request's principal, or nil when anonymous.
// The principal may be shared with the key cache: never modify it.
func FromContext(ctx context.Context) *keyhub.Principal {
	p, _ := ctx.Value(principalKey{}).(*keyhub.Principal)
	return p
}

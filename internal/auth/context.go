package auth

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/keyhub/keyhub/internal/keyhub"
)

type principalKey struct{}

// admitted is the context of an admitted request: it carries the
// principal and, for the usage count, how the request ended. One value
// serves both, so the hot path allocates no more than a plain
// context.WithValue would.
type admitted struct {
	context.Context
	p *keyhub.Principal
	// at is when the request was admitted: the hour its use counts in.
	at time.Time
	// outcome is set by WriteError when a later step (a route's scope,
	// its own rate limit) refuses the request.
	outcome atomic.Uint32
}

func (c *admitted) Value(key any) any {
	if key == (principalKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// NewContext returns ctx carrying the authenticated principal.
func NewContext(ctx context.Context, p *keyhub.Principal) context.Context {
	return &admitted{Context: ctx, p: p}
}

// FromContext returns the request's principal, or nil when anonymous.
// The principal may be shared with the key cache: never modify it.
func FromContext(ctx context.Context) *keyhub.Principal {
	if c, _ := ctx.Value(principalKey{}).(*admitted); c != nil {
		return c.p
	}
	return nil
}

// refused records on an admitted request's context that err refused it.
func refused(ctx context.Context, err error) {
	c, _ := ctx.Value(principalKey{}).(*admitted)
	if c == nil {
		return
	}
	o := keyhub.UsageRefused
	var rf *Refusal
	if errors.As(err, &rf) {
		o = keyhub.UsageRateLimited
	}
	c.outcome.Store(uint32(o))
}

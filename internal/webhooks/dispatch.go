package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/wire"
)

// DispatcherConfig assembles a Dispatcher.
type DispatcherConfig struct {
	Store  Store
	Client *http.Client // NewClient's
	Log    *slog.Logger
	// Timeout bounds one attempt (the client's own); a claim outlives it.
	Timeout time.Duration
	// PollInterval is how often the outbox is read for due retries; new
	// events wake the dispatcher at once (EventWritten).
	PollInterval time.Duration
	// RetryMin is the wait after the first failure, doubled after each
	// further one up to RetryMax; RetryWindow is how long after its event
	// a delivery is retried before it fails for good.
	RetryMin, RetryMax, RetryWindow time.Duration
	// Concurrency is how many attempts run at once in this process.
	Concurrency int
}

// Dispatcher drains the outbox: it claims due deliveries (whichever
// replica claims a row sends it, no other touches it meanwhile), sends
// them signed, and records each attempt, rescheduling failures with
// exponential backoff. Delivery is at least once: a receiver dedupes by
// webhook-id.
type Dispatcher struct {
	cfg  DispatcherConfig
	wake chan struct{}
	// lease is how long a claimed delivery is held: past the attempt's
	// timeout and the time to record it, so it never runs twice at once.
	lease time.Duration
}

// NewDispatcher returns a dispatcher; Run starts it.
func NewDispatcher(cfg DispatcherConfig) *Dispatcher {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	return &Dispatcher{cfg: cfg, wake: make(chan struct{}, 1), lease: 2*cfg.Timeout + 30*time.Second}
}

// Wake makes the dispatcher look at the outbox now.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// EventWritten implements keyhub.ChangeObserver: a committed event may
// have filled the outbox (the trigger writes deliveries with the event).
func (d *Dispatcher) EventWritten(keyhub.Event) { d.Wake() }

// FeedUp implements keyhub.ChangeObserver: events written while the feed
// was down were not heard; look now rather than at the next poll.
func (d *Dispatcher) FeedUp() { d.Wake() }

// KeyChanged implements keyhub.ChangeObserver.
func (d *Dispatcher) KeyChanged(keyhub.KeyChange) {}

// PrincipalChanged implements keyhub.ChangeObserver.
func (d *Dispatcher) PrincipalChanged(keyhub.PrincipalChange) {}

// FeedDown implements keyhub.ChangeObserver: the poll keeps going.
func (d *Dispatcher) FeedDown() {}

var _ keyhub.ChangeObserver = (*Dispatcher)(nil)

// Run delivers until ctx ends, then waits for the attempts in flight to
// record their outcome.
func (d *Dispatcher) Run(ctx context.Context) {
	slots := make(chan struct{}, d.cfg.Concurrency)
	done := make(chan struct{}, d.cfg.Concurrency)
	running := 0
	defer func() {
		for ; running > 0; running-- {
			<-done
		}
	}()
	poll := time.NewTicker(d.cfg.PollInterval)
	defer poll.Stop()
	for {
		if free := cap(slots) - running; free > 0 && ctx.Err() == nil {
			batch, err := d.cfg.Store.ClaimDeliveries(ctx, free, d.lease)
			if err != nil && ctx.Err() == nil {
				d.cfg.Log.Warn("webhooks: claim deliveries", "err", err)
			}
			for _, del := range batch {
				running++
				go func() {
					d.attempt(ctx, del)
					done <- struct{}{}
				}()
			}
			if len(batch) == free {
				// Maybe more are due: claim again once a slot frees.
				select {
				case <-ctx.Done():
					return
				case <-done:
					running--
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-done:
			running--
		case <-d.wake:
		case <-poll.C:
		}
	}
}

// attempt sends one claimed delivery and records what became of it.
func (d *Dispatcher) attempt(ctx context.Context, del keyhub.OutboundDelivery) {
	status, sendErr := d.send(ctx, del)
	outcome := keyhub.DeliveryOutcome{DeliveryID: del.ID, ClaimID: del.ClaimID, StatusCode: status}
	now := time.Now()
	switch {
	case sendErr == nil && status >= 200 && status < 300:
		outcome.Status, outcome.NextAttemptAt = keyhub.DeliveryDelivered, now
	default:
		switch {
		case sendErr != nil:
			outcome.Error = describeError(sendErr, d.cfg.Timeout)
		case status >= 300 && status < 400:
			outcome.Error = fmt.Sprintf("HTTP %d: redirects are not followed", status)
		default:
			outcome.Error = fmt.Sprintf("HTTP %d", status)
		}
		outcome.Status, outcome.NextAttemptAt = keyhub.DeliveryPending, now.Add(d.backoff(del.Attempt))
		if ctx.Err() != nil {
			outcome.NextAttemptAt = now // interrupted by shutdown: another replica may go on at once
		}
		if outcome.NextAttemptAt.After(del.CreatedAt.Add(d.cfg.RetryWindow)) {
			outcome.Status = keyhub.DeliveryFailed
		}
	}
	// The outcome is recorded even while shutting down: a short context
	// of its own.
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := d.cfg.Store.FinishDelivery(recordCtx, outcome); err != nil {
		d.cfg.Log.Warn("webhooks: record an attempt", "delivery_id", del.ID, "err", err)
	}
}

// backoff is the wait after the attempt-th failure: RetryMin doubled per
// earlier failure, at most RetryMax, less up to a fifth at random so that
// the retries of one outage do not all land together.
func (d *Dispatcher) backoff(attempt int) time.Duration {
	wait := d.cfg.RetryMax
	if attempt <= 30 {
		wait = min(d.cfg.RetryMin<<(attempt-1), d.cfg.RetryMax)
	}
	return wait - time.Duration(rand.Int64N(int64(wait)/5+1))
}

// send posts the event, signed, and reads at most maxResponseBytes of the
// answer. The body is the event as GET /v1/events shows it.
func (d *Dispatcher) send(ctx context.Context, del keyhub.OutboundDelivery) (int, error) {
	body, err := json.Marshal(wire.EventFrom(del.Event))
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, del.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "keyhub-webhooks/1")
	if err := SetHeaders(req.Header, del.Secret, del.ID.String(), time.Now(), body); err != nil {
		return 0, err
	}
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	return resp.StatusCode, nil
}

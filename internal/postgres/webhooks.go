package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/keyhub/keyhub/internal/dbgen"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// errWebhookNotFound answers for a missing webhook and for another
// owner's alike.
var errWebhookNotFound = keyhub.Errorf(keyhub.CodeNotFound, "webhook not found")

// InsertWebhook stores a webhook of the principal's owner with its signing
// secret, within keyhub.MaxWebhooksPerOwner. The acting user is re-read in
// the transaction under the owner's write lock, as for a key write, so the
// count cannot race another create.
func (s *Store) InsertWebhook(ctx context.Context, p *keyhub.Principal, in keyhub.WebhookInput, secret string) (keyhub.Webhook, error) {
	var out keyhub.Webhook
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := s.lockActor(ctx, tx, p, p.UserID); err != nil {
			return err
		}
		n, err := s.q.CountWebhooksOfOwner(ctx, tx, p.OwnerID)
		if err != nil {
			return err
		}
		if n >= keyhub.MaxWebhooksPerOwner {
			return keyhub.Errorf(keyhub.CodeWebhookLimitReached, "an owner may have at most %d webhooks: delete one first", keyhub.MaxWebhooksPerOwner)
		}
		types := make([]string, 0, len(in.EventTypes))
		for _, t := range in.EventTypes {
			types = append(types, string(t))
		}
		row, err := s.q.InsertWebhook(ctx, tx, dbgen.InsertWebhookParams{
			OwnerID: p.OwnerID, CreatedBy: p.UserID, Url: in.URL, EventTypes: types, Secret: secret,
		})
		out = webhookFromRow(row)
		return err
	})
	if err != nil {
		return keyhub.Webhook{}, dbError(err, "webhook")
	}
	return out, nil
}

// ListWebhooks returns the owner's webhooks, oldest first.
func (s *Store) ListWebhooks(ctx context.Context, ownerID uuid.UUID) ([]keyhub.Webhook, error) {
	rows, err := s.q.ListWebhooksOfOwner(ctx, s.pool, ownerID)
	if err != nil {
		return nil, dbError(err, "webhooks")
	}
	out := make([]keyhub.Webhook, 0, len(rows))
	for _, r := range rows {
		out = append(out, webhookFromRow(r))
	}
	return out, nil
}

// DeleteWebhook deletes a webhook of the principal's owner and, with it,
// its deliveries (pending ones are never sent).
func (s *Store) DeleteWebhook(ctx context.Context, p *keyhub.Principal, id uuid.UUID) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := s.lockActor(ctx, tx, p, p.UserID); err != nil {
			return err
		}
		n, err := s.q.DeleteWebhook(ctx, tx, dbgen.DeleteWebhookParams{ID: id, OwnerID: p.OwnerID})
		if err == nil && n == 0 {
			return errWebhookNotFound
		}
		return err
	})
	return dbError(err, "webhook")
}

// deliveryCursor is the sort key of the last delivery of a page.
type deliveryCursor struct {
	CreatedAt time.Time `json:"t"`
	ID        uuid.UUID `json:"id"`
}

// ListDeliveries returns a page of a webhook of the owner's deliveries,
// newest first, each with its attempts in order.
func (s *Store) ListDeliveries(ctx context.Context, ownerID, webhookID uuid.UUID, page keyhub.Page) ([]keyhub.WebhookDelivery, string, error) {
	var after deliveryCursor
	if err := decodeCursor(page.Cursor, &after); err != nil {
		return nil, "", err
	}
	if _, err := s.q.GetWebhookOfOwner(ctx, s.pool, dbgen.GetWebhookOfOwnerParams{ID: webhookID, OwnerID: ownerID}); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, "", errWebhookNotFound
		}
		return nil, "", dbError(err, "webhook")
	}
	params := dbgen.ListWebhookDeliveriesParams{WebhookID: webhookID, MaxRows: int32(page.Size() + 1)}
	if page.Cursor != "" {
		params.AfterCreatedAt = &after.CreatedAt
		params.AfterID = uuid.NullUUID{UUID: after.ID, Valid: true}
	}
	rows, err := s.q.ListWebhookDeliveries(ctx, s.pool, params)
	if err != nil {
		return nil, "", dbError(err, "webhook deliveries")
	}
	var next string
	if len(rows) > page.Size() {
		rows = rows[:page.Size()]
		last := rows[len(rows)-1]
		next = encodeCursor(deliveryCursor{CreatedAt: last.CreatedAt, ID: last.ID})
	}
	ids := make([]uuid.UUID, 0, len(rows))
	for _, r := range rows {
		ids = append(ids, r.ID)
	}
	attempts, err := s.q.ListWebhookAttempts(ctx, s.pool, ids)
	if err != nil {
		return nil, "", dbError(err, "webhook attempts")
	}
	byDelivery := make(map[uuid.UUID][]keyhub.WebhookAttempt, len(rows))
	for _, a := range attempts {
		byDelivery[a.DeliveryID] = append(byDelivery[a.DeliveryID], attemptFromRow(a))
	}
	out := make([]keyhub.WebhookDelivery, 0, len(rows))
	for _, r := range rows {
		d := keyhub.WebhookDelivery{
			ID: r.ID, WebhookID: r.WebhookID, EventID: r.EventID, EventType: keyhub.EventType(r.EventType),
			Status: keyhub.DeliveryStatus(r.Status), CreatedAt: r.CreatedAt, FinishedAt: r.FinishedAt,
			Attempts: byDelivery[r.ID],
		}
		if d.Status == keyhub.DeliveryPending {
			at := r.NextAttemptAt
			d.NextAttemptAt = &at
		}
		if d.Attempts == nil {
			d.Attempts = []keyhub.WebhookAttempt{}
		}
		out = append(out, d)
	}
	return out, next, nil
}

// ClaimDeliveries claims up to max due deliveries for this replica in one
// short transaction: each gets a fresh claim and an attempt row (started,
// not finished), and is not due again for lease, which must outlast the
// attempt. Rows other replicas are claiming are skipped, never waited
// for, so two replicas never hold the same delivery at once.
func (s *Store) ClaimDeliveries(ctx context.Context, max int, lease time.Duration) ([]keyhub.OutboundDelivery, error) {
	var out []keyhub.OutboundDelivery
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		out = out[:0]
		claimed, err := s.q.ClaimDueDeliveries(ctx, tx, dbgen.ClaimDueDeliveriesParams{LeaseSeconds: lease.Seconds(), MaxRows: int32(max)})
		if err != nil || len(claimed) == 0 {
			return err
		}
		ids := make([]uuid.UUID, 0, len(claimed))
		for _, c := range claimed {
			ids = append(ids, c.ID)
			if err := s.q.InsertWebhookAttempt(ctx, tx, dbgen.InsertWebhookAttemptParams{DeliveryID: c.ID, ClaimID: c.ClaimID.UUID}); err != nil {
				return fmt.Errorf("record the attempt of delivery %s: %w", c.ID, err)
			}
		}
		targets, err := s.q.ClaimedDeliveryTargets(ctx, tx, ids)
		if err != nil {
			return err
		}
		byID := make(map[uuid.UUID]dbgen.ClaimedDeliveryTargetsRow, len(targets))
		for _, t := range targets {
			byID[t.DeliveryID] = t
		}
		for _, c := range claimed {
			t := byID[c.ID]
			out = append(out, keyhub.OutboundDelivery{
				ID: c.ID, ClaimID: c.ClaimID.UUID, Attempt: int(c.Attempts), CreatedAt: c.CreatedAt,
				URL: t.Url, Secret: t.Secret,
				Event: eventFromRow(dbgen.ApiKeyEvent{
					ID: t.ID, ApiKeyID: t.ApiKeyID, OwnerID: t.OwnerID, ActorUserID: t.ActorUserID, ActorKeyID: t.ActorKeyID,
					EventType: t.EventType, IpAddress: t.IpAddress, UserAgent: t.UserAgent, Details: t.Details, CreatedAt: t.CreatedAt,
				}, t.ActorEmail),
			})
		}
		return nil
	})
	if err != nil {
		return nil, dbError(err, "webhook deliveries")
	}
	return out, nil
}

// maxAttemptError is the longest error text an attempt keeps, as the
// column's CHECK counts it.
const maxAttemptError = 500

// FinishDelivery records an attempt's outcome and moves its delivery on,
// only while the claim is still this replica's (it always is unless the
// attempt outlived its lease, when the result is dropped: the delivery is
// someone else's now). It reports whether the outcome was recorded.
func (s *Store) FinishDelivery(ctx context.Context, o keyhub.DeliveryOutcome) (bool, error) {
	var recorded bool
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		params := dbgen.FinishWebhookAttemptParams{ClaimID: o.ClaimID, Succeeded: o.Status == keyhub.DeliveryDelivered}
		if o.StatusCode != 0 {
			params.StatusCode = pgtype.Int4{Int32: int32(o.StatusCode), Valid: true}
		}
		if msg := storableText(o.Error, maxAttemptError); msg != "" {
			params.Error = &msg
		}
		n, err := s.q.FinishWebhookAttempt(ctx, tx, params)
		if err != nil || n == 0 {
			return err
		}
		n, err = s.q.SettleDelivery(ctx, tx, dbgen.SettleDeliveryParams{
			ID: o.DeliveryID, ClaimID: uuid.NullUUID{UUID: o.ClaimID, Valid: true}, Status: string(o.Status), NextAttemptAt: o.NextAttemptAt,
		})
		recorded = n == 1
		return err
	})
	if err != nil {
		return false, dbError(err, "webhook delivery")
	}
	return recorded, nil
}

func webhookFromRow(r dbgen.Webhook) keyhub.Webhook {
	w := keyhub.Webhook{ID: r.ID, OwnerID: r.OwnerID, CreatedBy: r.CreatedBy, URL: r.Url, CreatedAt: r.CreatedAt}
	for _, t := range r.EventTypes {
		w.EventTypes = append(w.EventTypes, keyhub.EventType(t))
	}
	return w
}

func attemptFromRow(r dbgen.WebhookAttempt) keyhub.WebhookAttempt {
	a := keyhub.WebhookAttempt{StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Succeeded: r.Succeeded}
	if r.StatusCode.Valid {
		a.StatusCode = int(r.StatusCode.Int32)
	}
	if r.Error != nil {
		a.Error = *r.Error
	}
	return a
}

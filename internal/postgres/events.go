package postgres

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/dbgen"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// ListEvents returns a page of the owner's key events, newest first.
func (s *Store) ListEvents(ctx context.Context, ownerID uuid.UUID, f keyhub.EventFilter, page keyhub.Page) ([]keyhub.Event, string, error) {
	var after eventCursor
	if err := decodeCursor(page.Cursor, &after); err != nil {
		return nil, "", err
	}
	params := dbgen.ListEventsParams{
		OwnerID:    ownerID,
		EventTypes: make([]string, 0, len(f.Types)),
		Since:      f.Since,
		Until:      f.Until,
		MaxRows:    int32(page.Size() + 1),
	}
	if f.KeyID != nil {
		params.ApiKeyID = uuid.NullUUID{UUID: *f.KeyID, Valid: true}
	}
	for _, t := range f.Types {
		params.EventTypes = append(params.EventTypes, string(t))
	}
	if page.Cursor != "" {
		params.AfterCreatedAt = &after.CreatedAt
		params.AfterID = &after.ID
	}
	rows, err := s.q.ListEvents(ctx, s.pool, params)
	if err != nil {
		return nil, "", dbError(err, "events")
	}
	events := make([]keyhub.Event, 0, len(rows))
	for _, r := range rows {
		events = append(events, eventFromRow(r.ApiKeyEvent, r.ActorEmail))
	}
	var next string
	if len(events) > page.Size() {
		events = events[:page.Size()]
		last := events[len(events)-1]
		next = encodeCursor(eventCursor{CreatedAt: last.CreatedAt, ID: last.ID})
	}
	return events, next, nil
}

// eventFromRow converts an event row; actorEmail is the acting user's
// email as the reading query joined it (nil: none).
func eventFromRow(r dbgen.ApiKeyEvent, actorEmail *string) keyhub.Event {
	e := keyhub.Event{
		ID:        r.ID,
		KeyID:     r.ApiKeyID,
		OwnerID:   r.OwnerID,
		Type:      keyhub.EventType(r.EventType),
		IP:        r.IpAddress,
		CreatedAt: r.CreatedAt,
	}
	if r.ActorUserID.Valid {
		id := r.ActorUserID.UUID
		e.ActorUserID = &id
	}
	if r.ActorKeyID.Valid {
		id := r.ActorKeyID.UUID
		e.ActorKeyID = &id
	}
	if r.UserAgent != nil {
		e.UserAgent = *r.UserAgent
	}
	if r.Details.Valid {
		e.Details = r.Details.RawMessage
	}
	if actorEmail != nil {
		e.ActorEmail = *actorEmail
	}
	return e
}

// fillCreators sets CreatedBy on keys of ownerID, in one query whatever
// their number (db: the pool, or the transaction that wrote them).
func (s *Store) fillCreators(ctx context.Context, db dbgen.DBTX, ownerID uuid.UUID, keys ...*keyhub.Key) error {
	if len(keys) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	rows, err := s.q.KeyCreators(ctx, db, dbgen.KeyCreatorsParams{OwnerID: ownerID, KeyIds: ids})
	if err != nil {
		return fmt.Errorf("read who created %d keys: %w", len(keys), err)
	}
	byKey := make(map[uuid.UUID]*keyhub.KeyCreator, len(rows))
	for _, r := range rows {
		byKey[r.KeyID] = keyCreator(r.ActorUserID, r.ActorEmail, r.ActorKeyID, r.ActorKeyPrefix)
	}
	for _, k := range keys {
		k.CreatedBy = byKey[k.ID]
	}
	return nil
}

// keyCreator is who created a key from the actor of its created event:
// nil when keyhub made it itself (an auto-rotation, no actor).
func keyCreator(userID uuid.NullUUID, email *string, keyID uuid.NullUUID, keyPrefix *string) *keyhub.KeyCreator {
	if !userID.Valid {
		return nil
	}
	c := &keyhub.KeyCreator{UserID: userID.UUID}
	if email != nil {
		c.Email = *email
	}
	if keyID.Valid {
		id := keyID.UUID
		c.KeyID = &id
		if keyPrefix != nil {
			c.KeyPrefix = *keyPrefix
		}
	}
	return c
}

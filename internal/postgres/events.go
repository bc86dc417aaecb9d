package postgres

import (
	"context"

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
		events = append(events, eventFromRow(r))
	}
	var next string
	if len(events) > page.Size() {
		events = events[:page.Size()]
		last := events[len(events)-1]
		next = encodeCursor(eventCursor{CreatedAt: last.CreatedAt, ID: last.ID})
	}
	return events, next, nil
}

func eventFromRow(r dbgen.ApiKeyEvent) keyhub.Event {
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
	return e
}

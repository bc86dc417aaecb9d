package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/keyhub/keyhub/internal/changes"
	"github.com/keyhub/keyhub/internal/dbgen"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// UpdateKey changes an active key's name, metadata, allowed_cidrs and
// scopes, with an "updated" event whose details list the fields that
// changed. The acting credential is re-checked like any write's, may
// change only keys whose scopes it holds, and may give only scopes it
// holds (as at create). A revoked or expired key is not edited
// (KEY_NOT_ACTIVE, as for a disable).
func (s *Store) UpdateKey(ctx context.Context, p *keyhub.Principal, keyID uuid.UUID, in keyhub.KeyUpdate, meta keyhub.RequestMeta) (keyhub.Key, error) {
	var key keyhub.Key
	var events []keyhub.Event
	var keyChanges []keyhub.KeyChange
	write := func(tx pgx.Tx) error {
		events, keyChanges = nil, nil
		a, row, target, err := s.lockChangeable(ctx, tx, p, keyID)
		if err != nil {
			return err
		}
		key = target
		if status := key.StatusAt(a.at); status != keyhub.KeyActive {
			return keyhub.Errorf(keyhub.CodeKeyNotActive, "only an active key can be edited; this one is %s", status)
		}
		params := dbgen.UpdateKeyControlsParams{ID: row.ID, OwnerID: row.OwnerID, Name: row.Name, Metadata: row.Metadata, AllowedCidrs: row.AllowedCidrs, Scopes: row.Scopes}
		var changed []string
		if in.Name != nil && *in.Name != row.Name {
			params.Name, changed = *in.Name, append(changed, "name")
		}
		if in.Metadata != nil && !bytes.Equal(in.Metadata, row.Metadata) && !sameJSON(in.Metadata, row.Metadata) {
			params.Metadata, changed = in.Metadata, append(changed, "metadata")
		}
		if in.AllowedCIDRs != nil && !slices.Equal(*in.AllowedCIDRs, row.AllowedCidrs) {
			params.AllowedCidrs, changed = *in.AllowedCIDRs, append(changed, "allowed_cidrs")
			if params.AllowedCidrs == nil {
				params.AllowedCidrs = []netip.Prefix{}
			}
		}
		if in.Scopes != nil {
			if err := a.mayGrant(*in.Scopes); err != nil {
				return err
			}
			// Compared as names: a stored name this process's catalog
			// no longer knows (a removed product scope) is dropped too.
			if names := s.scopes.Names(*in.Scopes); !sameSet(names, row.Scopes) {
				params.Scopes, changed = names, append(changed, "scopes")
			}
		}
		if len(changed) == 0 {
			return nil
		}
		if row, err = s.q.UpdateKeyControls(ctx, tx, params); err != nil {
			return fmt.Errorf("update key %s: %w", keyID, err)
		}
		if key, err = s.withAncestry(ctx, tx, row); err != nil {
			return err
		}
		// What a cached verification holds (name, networks, scopes) changed.
		if slices.ContainsFunc(changed, func(field string) bool { return field != "metadata" }) {
			keyChanges = append(keyChanges, changes.KeyChangeOf(key, row.KeyHash, a.at))
		}
		event, err := s.insertEvent(ctx, tx, a, key, keyhub.EventUpdated, meta, map[string]any{"changed": changed})
		events = append(events, event)
		return err
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := write(tx); err != nil {
			return err
		}
		return s.fillCreators(ctx, tx, p.OwnerID, &key)
	})
	if err != nil {
		return keyhub.Key{}, dbError(err, "key")
	}
	s.publish(keyChanges, events)
	return key, nil
}

// sameSet reports whether two lists of names hold the same names.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// sameJSON reports whether two JSON objects hold the same values (jsonb
// stores its own spelling of what a client sent).
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// SetKeyDisabled disables or enables an active key, with a "disabled" or
// "enabled" event. Every process drops its cached verification of the key
// and of each key obtained through it (the trigger announces them all;
// this process hears them from the writer at once), and their sockets
// close with 4001 on a disable. Nothing is revoked or replaced: enabling
// the key restores it and them.
func (s *Store) SetKeyDisabled(ctx context.Context, p *keyhub.Principal, keyID uuid.UUID, disabled bool, meta keyhub.RequestMeta) (keyhub.Key, error) {
	var key keyhub.Key
	var events []keyhub.Event
	var keyChanges []keyhub.KeyChange
	write := func(tx pgx.Tx) error {
		events, keyChanges = nil, nil
		a, row, target, err := s.lockChangeable(ctx, tx, p, keyID)
		if err != nil {
			return err
		}
		key = target
		if status := key.StatusAt(a.at); status != keyhub.KeyActive {
			return keyhub.Errorf(keyhub.CodeKeyNotActive, "only an active key can be disabled or enabled; this one is %s", status)
		}
		if (row.DisabledAt != nil) == disabled {
			key, err = s.withAncestry(ctx, tx, row)
			return err // already so: nothing to write
		}
		var at *time.Time
		typ := keyhub.EventEnabled
		if disabled {
			at, typ = &a.at, keyhub.EventDisabled
		}
		if row, err = s.q.SetKeyDisabled(ctx, tx, dbgen.SetKeyDisabledParams{ID: row.ID, OwnerID: row.OwnerID, DisabledAt: at}); err != nil {
			return fmt.Errorf("set key %s disabled=%t: %w", keyID, disabled, err)
		}
		if key, err = s.withAncestry(ctx, tx, row); err != nil {
			return err
		}
		keyChanges = append(keyChanges, changes.KeyChangeOf(key, row.KeyHash, a.at))
		descendants, err := s.q.DescendantsWithState(ctx, tx, row.ID)
		if err != nil {
			return fmt.Errorf("keys obtained through %s: %w", keyID, err)
		}
		for _, d := range descendants {
			child := s.keyFromRow(d.ApiKey)
			child.Disabled = d.Disabled
			keyChanges = append(keyChanges, changes.KeyChangeOf(child, d.ApiKey.KeyHash, a.at))
		}
		event, err := s.insertEvent(ctx, tx, a, key, typ, meta, nil)
		events = append(events, event)
		return err
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := write(tx); err != nil {
			return err
		}
		return s.fillCreators(ctx, tx, p.OwnerID, &key)
	})
	if err != nil {
		return keyhub.Key{}, dbError(err, "key")
	}
	s.publish(keyChanges, events)
	return key, nil
}

// withAncestry converts a key row, with Disabled saying whether the key
// or a key it was obtained through is disabled.
func (s *Store) withAncestry(ctx context.Context, tx pgx.Tx, row dbgen.ApiKey) (keyhub.Key, error) {
	key := s.keyFromRow(row)
	disabled, err := s.q.KeyDisabled(ctx, tx, row.ID)
	if err != nil {
		return keyhub.Key{}, fmt.Errorf("is key %s disabled: %w", row.ID, err)
	}
	key.Disabled = disabled
	return key, nil
}

package keyhub

import (
	"encoding/json"
	"slices"
	"time"
)

// ExpiryWarningWindows are how long before a key's expiry its owner (the
// `expiring` event and its webhooks) and the daemons connected with it
// (`key_expiring`) are warned: when the key enters each window, once.
var ExpiryWarningWindows = []time.Duration{7 * 24 * time.Hour, 24 * time.Hour}

// ExpiryWarningHorizon is the largest of ExpiryWarningWindows: a key
// further than this from its expiry is inside none of them.
func ExpiryWarningHorizon() time.Duration { return slices.Max(ExpiryWarningWindows) }

// ExpiryWarning is what an `expiring` event says: the expiry it warns of,
// and the window the key entered (how long before that expiry it starts).
type ExpiryWarning struct {
	ExpiresAt time.Time
	Window    time.Duration
}

// ExpiryWarningOf reads the warning an `expiring` event carries in its
// details; ok is false for any other event, or one without an expiry.
func ExpiryWarningOf(e Event) (w ExpiryWarning, ok bool) {
	if e.Type != EventExpiring {
		return ExpiryWarning{}, false
	}
	var details struct {
		ExpiresAt     time.Time `json:"expires_at"`
		WindowSeconds int64     `json:"window_seconds"`
	}
	if json.Unmarshal(e.Details, &details) != nil || details.ExpiresAt.IsZero() {
		return ExpiryWarning{}, false
	}
	return ExpiryWarning{ExpiresAt: details.ExpiresAt, Window: time.Duration(details.WindowSeconds) * time.Second}, true
}

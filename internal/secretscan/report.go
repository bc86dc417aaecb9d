package secretscan

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// MaxReportBytes caps a report's body. GitHub sends a batch of matches per
// request; a thousand at the longest sizes fits.
const MaxReportBytes = 1 << 20

// MaxReportItems caps the matches of one report.
const MaxReportItems = 1000

// maxFieldLen caps each string of a match: no token or URL keyhub cares
// about comes near it.
const maxFieldLen = 2048

// Match is one token GitHub found in public.
type Match struct {
	Token  string `json:"token"`
	Type   string `json:"type"`
	URL    string `json:"url"`
	Source string `json:"source"`
}

// Feedback is GitHub's documented answer for one match: whether the token
// is a real credential of the provider.
type Feedback struct {
	TokenHash string `json:"token_hash"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"`
}

// The labels of Feedback.
const (
	LabelTruePositive  = "true_positive"
	LabelFalsePositive = "false_positive"
)

// FeedbackFor labels match m: a true positive when the token is a real key.
func FeedbackFor(m Match, real bool) Feedback {
	sum := sha256.Sum256([]byte(m.Token))
	label := LabelFalsePositive
	if real {
		label = LabelTruePositive
	}
	return Feedback{TokenHash: hex.EncodeToString(sum[:]), TokenType: m.Type, Label: label}
}

// ParseReport reads a report: a JSON array of matches, each with a
// non-empty token, at most MaxReportItems of them. Unknown fields are
// ignored (GitHub may add some); anything else is VALIDATION_FAILED or
// INVALID_JSON.
func ParseReport(body []byte) ([]Match, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return nil, keyhub.Errorf(keyhub.CodeInvalidJSON, "the report must be a JSON array of matches")
	}
	var matches []Match
	if err := json.Unmarshal(body, &matches); err != nil {
		return nil, keyhub.Errorf(keyhub.CodeInvalidJSON, "the report must be a JSON array of {token, type, url, source}")
	}
	if len(matches) > MaxReportItems {
		return nil, keyhub.Errorf(keyhub.CodeValidation, "a report holds at most %d matches", MaxReportItems)
	}
	for i, m := range matches {
		switch {
		case m.Token == "":
			return nil, keyhub.Errorf(keyhub.CodeValidation, "match %d has no token", i)
		case len(m.Token) > maxFieldLen || len(m.Type) > maxFieldLen || len(m.URL) > maxFieldLen || len(m.Source) > maxFieldLen:
			return nil, keyhub.Errorf(keyhub.CodeValidation, "match %d: %s", i, fmt.Sprintf("fields are at most %d bytes", maxFieldLen))
		}
	}
	return matches, nil
}

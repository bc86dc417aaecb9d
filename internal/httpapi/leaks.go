package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/keyhub/keyhub/internal/apikey"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/secretscan"
)

// LeakSignatures verifies that a leak report was signed by GitHub
// (secretscan.Verifier).
type LeakSignatures interface {
	Verify(ctx context.Context, keyID, signature string, body []byte) error
}

// handleGitHubLeaks is GitHub's secret scanning partner endpoint: a signed
// report of tokens matching keyhub's pattern found in public. The
// signature is checked over the raw bytes before any of them is parsed;
// every token that is a keyhub key is recorded (and, by the owner's
// policy, revoked); the answer labels each token for GitHub.
func (s *server) handleGitHubLeaks(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, secretscan.MaxReportBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			httpjson.Error(w, r, keyhub.Errorf(keyhub.CodeBodyTooLarge, "a report is at most %d bytes", secretscan.MaxReportBytes))
			return
		}
		httpjson.Error(w, r, keyhub.Errorf(keyhub.CodeInvalidJSON, "the report could not be read"))
		return
	}
	err = s.deps.LeakSignatures.Verify(r.Context(), r.Header.Get(secretscan.HeaderKeyIdentifier), r.Header.Get(secretscan.HeaderSignature), body)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	matches, err := secretscan.ParseReport(body)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	feedback := make([]secretscan.Feedback, 0, len(matches))
	var known, revoked int
	for _, m := range matches {
		real := false
		// A token without our checksum cannot be a key: no lookup.
		if apikey.Parse(m.Token) == nil {
			out, err := s.deps.Leaks.RecordLeak(r.Context(), keyhub.Leak{KeyHash: apikey.HashHex(m.Token), URL: m.URL, Source: m.Source, Type: m.Type})
			if err != nil {
				// GitHub sends the report again; what was recorded stays.
				httpjson.Error(w, r, err)
				return
			}
			real = out.Known
			if out.Known {
				known++
			}
			if out.Revoked {
				revoked++
			}
		}
		feedback = append(feedback, secretscan.FeedbackFor(m, real))
	}
	s.deps.Log.InfoContext(r.Context(), "GitHub secret scanning report", "matches", len(matches), "keys", known, "revoked", revoked)
	httpjson.Write(w, http.StatusOK, feedback)
}

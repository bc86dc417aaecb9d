package secretscan_test

import (
	"testing"

	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/secretscan"
)

// FuzzParseReport: any body either parses into at most MaxReportItems
// matches, each with a token, or is refused with a client error; it never
// panics.
func FuzzParseReport(f *testing.F) {
	for _, seed := range []string{
		`[{"token":"mk_AAAA","type":"keyhub_api_key","url":"https://github.com/o/r","source":"content"}]`,
		`[]`, `null`, `{}`, `[{"token":""}]`, `[{"token":"\u0000"}]`, ` [ ] `, `[{"token":"a"},1]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		matches, err := secretscan.ParseReport(body)
		if err != nil {
			if c := keyhub.ErrorCode(err); c != keyhub.CodeInvalidJSON && c != keyhub.CodeValidation {
				t.Fatalf("refused with %s: %v", c, err)
			}
			return
		}
		if len(matches) > secretscan.MaxReportItems {
			t.Fatalf("%d matches", len(matches))
		}
		for _, m := range matches {
			if m.Token == "" {
				t.Fatal("a match without a token")
			}
		}
	})
}

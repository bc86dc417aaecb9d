package postgres

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// Whatever bytes a token claim holds, storableText returns valid UTF-8
// without control characters, at most max characters long, and keeps a
// clean short input as it is.
func FuzzStorableText(f *testing.F) {
	for _, seed := range []string{"", "a@example.com", "\x00", "\xff\xfe", strings.Repeat("é", 400), "tab\there"} {
		f.Add(seed, 320)
	}
	f.Fuzz(func(t *testing.T, in string, max int) {
		max = max%400 + 1
		if max < 1 {
			max += 400
		}
		out := storableText(in, max)
		if !utf8.ValidString(out) || utf8.RuneCountInString(out) > max || strings.ContainsFunc(out, unicode.IsControl) {
			t.Fatalf("storableText(%q, %d) = %q", in, max, out)
		}
		if utf8.ValidString(in) && !strings.ContainsFunc(in, unicode.IsControl) && utf8.RuneCountInString(in) <= max && out != in {
			t.Fatalf("a clean input was changed: %q → %q", in, out)
		}
	})
}

package keyhub_test

import (
	"strings"
	"testing"

	"github.com/keyhub/keyhub/internal/keyhub"
)

func TestKeyName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw, want string
		ok        bool
	}{
		{"laptop", "laptop", true},
		{"  laptop  ", "laptop", true},
		{"\u00a0laptop\u3000", "laptop", true},
		{"build box 7", "build box 7", true},
		{"clé", "clé", true},
		{strings.Repeat("x", 100), strings.Repeat("x", 100), true},
		{" " + strings.Repeat("é", 100) + " ", strings.Repeat("é", 100), true},
		{strings.Repeat("x", 101), "", false},
		{"", "", false},
		{"   ", "", false},
		{"\u2003", "", false},
		{"tab\there", "", false},
		{"laptop\n", "", false}, // a control character, even where trimming would drop it
		{"nul\x00", "", false},
		{"del\x7f", "", false},
		{"c1\u0085", "", false},
		{"c1\u009b[31m", "", false},
		{"evil\u202egnp.exe", "", false}, // right-to-left override
		{"\u202aembedded", "", false},
		{"iso\u2066late\u2069", "", false},
		{"pop\u202c", "", false},
		{"mark\u200f", "mark\u200f", true}, // marks do not reorder text on their own
	} {
		got, err := keyhub.KeyName(tc.raw)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("KeyName(%q) = %q, %v; want %q, ok=%v", tc.raw, got, err, tc.want, tc.ok)
		}
		if err != nil && keyhub.ErrorCode(err) != keyhub.CodeValidation {
			t.Errorf("KeyName(%q): code %s", tc.raw, keyhub.ErrorCode(err))
		}
	}
}

package keyhub

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxKeyNameChars is the longest key name, in characters after trimming.
const MaxKeyNameChars = 100

// KeyName checks a key name as a client sent it and returns it without the
// white space around it. Control characters (C0, DEL, C1) and the
// bidirectional formatting characters that can make a name display as
// another one in a list (embeddings and overrides U+202A–U+202E, isolates
// U+2066–U+2069) are refused anywhere, before trimming, so the rule is the
// same whatever surrounds the name; then 1 to MaxKeyNameChars characters
// must remain. openapi.yaml states this rule as a pattern, and a fuzz test
// holds the two together.
func KeyName(raw string) (string, error) {
	if strings.ContainsFunc(raw, forbiddenInKeyName) {
		return "", Errorf(CodeValidation, "name must not contain control characters or bidirectional formatting characters (U+202A to U+202E, U+2066 to U+2069)")
	}
	name := strings.TrimSpace(raw)
	if n := utf8.RuneCountInString(name); n < 1 || n > MaxKeyNameChars {
		return "", Errorf(CodeValidation, "name must be 1 to %d characters (after trimming spaces)", MaxKeyNameChars)
	}
	return name, nil
}

// forbiddenInKeyName reports the characters no key name may hold.
func forbiddenInKeyName(r rune) bool {
	return unicode.IsControl(r) || (r >= '\u202A' && r <= '\u202E') || (r >= '\u2066' && r <= '\u2069')
}

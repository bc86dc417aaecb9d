package apikey_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/keyhub/keyhub/internal/apikey"
)

// The pattern registered with GitHub finds every key Generate makes, and
// nothing a character away from one; a key inside a longer token is not
// found when the boundary is applied.
func TestSecretScanningPatternMatchesKeysOnly(t *testing.T) {
	whole := regexp.MustCompile(`^` + apikey.SecretScanningPattern + `$`)
	inText := regexp.MustCompile(`(?:^|` + apikey.SecretScanningBoundary + `)(` + apikey.SecretScanningPattern + `)(?:$|` + apikey.SecretScanningBoundary + `)`)
	for range 2000 {
		key, err := apikey.Generate()
		if err != nil {
			t.Fatal(err)
		}
		if !whole.MatchString(key) {
			t.Fatalf("the pattern misses the generated key %s", key)
		}
		if m := inText.FindStringSubmatch(`KEYHUB_API_KEY="` + key + `"`); m == nil || m[1] != key {
			t.Fatalf("the pattern does not find %s in an assignment: %v", key, m)
		}
		body := key[len(apikey.Prefix):]
		for name, near := range map[string]string{
			"short":        key[:len(key)-1],
			"long":         key + "A",
			"prefix":       "mk-" + body,
			"upper prefix": "MK_" + body,
			"bad letter":   key[:10] + "." + key[11:],
			"padding bits": key[:len(key)-1] + string(nonCanonical(key[len(key)-1])),
		} {
			if whole.MatchString(near) {
				t.Fatalf("the pattern matches a near miss (%s) of %s: %s", name, key, near)
			}
			if apikey.Parse(near) == nil {
				t.Fatalf("Parse accepts the near miss (%s) %s", name, near)
			}
		}
		if inText.MatchString("x"+key) || inText.MatchString(key+"_") {
			t.Fatalf("a key inside a longer token is found: %s", key)
		}
	}
}

// nonCanonical is a base64url letter with the same top 4 bits as c and
// padding bits set: a last character no key ends with.
func nonCanonical(c byte) byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	return alphabet[strings.IndexByte(alphabet, c)|1]
}

// README.md gives partners exactly the pattern the tests check.
func TestReadmeQuotesSecretScanningPattern(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{apikey.SecretScanningPattern, apikey.SecretScanningBoundary} {
		if !strings.Contains(string(readme), "`"+want+"`") {
			t.Errorf("README.md does not quote %s", want)
		}
	}
}

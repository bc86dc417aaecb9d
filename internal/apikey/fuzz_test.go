package apikey

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

// FuzzParse checks Parse against the standard library's strict decoder and
// that nothing it accepts has a second spelling.
func FuzzParse(f *testing.F) {
	for _, known := range knownKeys {
		key := known.key
		f.Add(key)
		f.Add(key[:Length-1])
		f.Add(key + "A")
		f.Add(key[:Length-1] + "B")              // wrong last char
		f.Add(key[:Length-1] + "F")              // spare bits set
		f.Add(key[:10] + "+" + key[11:])         // standard, not URL, alphabet
		f.Add("MK_" + key[len(Prefix):])         // prefix case
		f.Add(key[:20] + "\n" + key[21:])        // skipped by lenient decoders
		f.Add(strings.Replace(key, "A", "B", 1)) // checksum
	}
	f.Add("")
	f.Add(Prefix)
	f.Add(strings.Repeat("\xff", Length))

	f.Fuzz(func(t *testing.T, key string) {
		err := Parse(key)
		if want := referenceParse(key); err != want {
			t.Fatalf("Parse(%q) = %v, reference says %v", key, err, want)
		}
		if err != nil {
			if err != ErrMalformed && err != ErrChecksum {
				t.Fatalf("Parse(%q) = %v, not one of the sentinels", key, err)
			}
			return
		}
		if len(key) != Length || !strings.HasPrefix(key, Prefix) {
			t.Fatalf("Parse accepts %q: wrong length or prefix", key)
		}
		// The lenient decoder ignores spare bits: if re-encoding what it
		// reads gives back the input, the input was the only spelling.
		payload, decodeErr := base64.RawURLEncoding.DecodeString(key[len(Prefix):])
		if decodeErr != nil {
			t.Fatalf("Parse accepts %q, which does not decode: %v", key, decodeErr)
		}
		if again := Prefix + base64.RawURLEncoding.EncodeToString(payload); again != key {
			t.Fatalf("Parse accepts %q, which re-encodes as %q", key, again)
		}
		decoded, ok := decode(key[len(Prefix):])
		if !ok || string(decoded[:]) != string(payload) {
			t.Fatalf("decode(%q) = %x, %v; want %x", key, decoded, ok, payload)
		}
	})
}

// FuzzSingleCharChange checks that changing any one byte of a valid key to
// anything else is rejected.
func FuzzSingleCharChange(f *testing.F) {
	f.Add([]byte("seed"), uint(0), byte('M'))
	f.Add([]byte("seed"), uint(Length-1), byte('A'))
	f.Add([]byte{}, uint(20), byte('+'))
	f.Add([]byte{1, 2, 3}, uint(45), byte('_'))
	f.Add([]byte("x"), uint(3), byte(0))

	f.Fuzz(func(t *testing.T, seed []byte, pos uint, replacement byte) {
		seedHash := sha256.Sum256(seed)
		var random [randomLen]byte
		copy(random[:], seedHash[:])
		key := encode(random)
		if err := Parse(key); err != nil {
			t.Fatalf("Parse(%q) = %v for a valid key", key, err)
		}
		pos %= Length
		if key[pos] == replacement {
			return
		}
		changed := []byte(key)
		changed[pos] = replacement
		if err := Parse(string(changed)); err == nil {
			t.Fatalf("Parse accepts %q, %q with byte %d changed to %q", changed, key, pos, replacement)
		}
	})
}

package apikey

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestHashKnownKeys(t *testing.T) {
	t.Parallel()
	for _, known := range knownKeys {
		if got := HashHex(known.key); got != known.hashHex {
			t.Errorf("HashHex(%q) = %s, want %s", known.key, got, known.hashHex)
		}
		want := sha256.Sum256([]byte(known.key))
		if got := Hash(known.key); got != want {
			t.Errorf("Hash(%q) = %x, want %x", known.key, got, want)
		}
	}
}

// TestHashAnyLength covers both paths of Hash: the stack copy and the
// fallback for input longer than a key.
func TestHashAnyLength(t *testing.T) {
	t.Parallel()
	for n := range 200 {
		input := strings.Repeat("k", n)
		if got, want := Hash(input), sha256.Sum256([]byte(input)); got != want {
			t.Errorf("Hash of %d bytes = %x, want %x", n, got, want)
		}
	}
}

func TestHashHexRoundTrip(t *testing.T) {
	t.Parallel()
	for range 100 {
		key := mustGenerate(t)
		keyHash := Hash(key)
		hashHex := HashHex(key)
		if len(hashHex) != 64 || strings.ToLower(hashHex) != hashHex {
			t.Fatalf("HashHex(%q) = %q, want 64 lowercase hex digits", key, hashHex)
		}
		if want := hex.EncodeToString(keyHash[:]); hashHex != want || HexOfHash(keyHash) != want {
			t.Fatalf("HashHex(%q) = %q, HexOfHash = %q, want %q", key, hashHex, HexOfHash(keyHash), want)
		}
		back, err := HashFromHex(hashHex)
		if err != nil {
			t.Fatalf("HashFromHex(%q): %v", hashHex, err)
		}
		if back != keyHash {
			t.Fatalf("HashFromHex(HashHex(%q)) = %x, want %x", key, back, keyHash)
		}
	}
}

func TestHashFromHexRejects(t *testing.T) {
	t.Parallel()
	valid := knownKeys[0].hashHex
	tests := map[string]string{
		"empty":       "",
		"one short":   valid[:63],
		"one long":    valid + "0",
		"odd char":    valid[:63] + "g",
		"uppercase":   strings.ToUpper(valid),
		"0x prefix":   "0x" + valid[2:],
		"space":       " " + valid[1:],
		"non-ASCII":   "é" + valid[2:],
		"double size": valid + valid,
	}
	for name, input := range tests {
		if got, err := HashFromHex(input); err == nil {
			t.Errorf("%s: HashFromHex(%q) = %x, want an error", name, input, got)
		}
	}
}

func BenchmarkHash(b *testing.B) {
	key := mustGenerate(b)
	b.ReportAllocs()
	for b.Loop() {
		_ = Hash(key)
	}
}

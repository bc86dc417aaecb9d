package apikey

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
)

// errBadHashHex reports a string that is not 64 lowercase hex digits.
var errBadHashHex = errors.New("apikey: key hash is not 64 lowercase hex digits")

// Hash returns the SHA-256 of the whole key; the raw array is the in-memory
// cache key (no allocation).
//
// A fast unsalted hash is enough because keys carry 224 random bits: there is
// nothing to brute-force, and the lookup must be by hash.
func Hash(key string) [32]byte {
	// sha256.Sum256([]byte(key)) allocates for strings over 32 bytes (the
	// compiler's stack buffer for conversions), and a key is 46; copying into
	// a stack array does not. TestZeroAllocs keeps this true.
	if len(key) <= hashStackLen {
		var buf [hashStackLen]byte
		n := copy(buf[:], key)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(key))
}

// hashStackLen is the longest input Hash copies to the stack: one SHA-256
// block, room for a key with margin.
const hashStackLen = 64

// HashHex is the hex form stored in api_keys.key_hash.
func HashHex(key string) string {
	return HexOfHash(Hash(key))
}

// HexOfHash formats a Hash result as lowercase hex.
func HexOfHash(keyHash [32]byte) string {
	return hex.EncodeToString(keyHash[:])
}

// HashFromHex parses the lowercase hex form of a Hash result back.
//
// Uppercase is rejected although hex could decode it: the database compares
// the text, so an uppercase hash would never match a row, and failing here
// finds that bug sooner.
func HashFromHex(s string) ([32]byte, error) {
	var keyHash [32]byte
	if len(s) != hex.EncodedLen(len(keyHash)) {
		return keyHash, errBadHashHex
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return keyHash, errBadHashHex
		}
	}
	if _, err := hex.Decode(keyHash[:], []byte(s)); err != nil {
		return [32]byte{}, errBadHashHex
	}
	return keyHash, nil
}

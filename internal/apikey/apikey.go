// Package apikey defines the format of keyhub API keys: how a key is
// generated, how a presented key is checked before any database lookup, and
// how it is hashed for storage and caching.
//
// A key is Prefix followed by 43 base64url characters (no padding) that
// encode 32 bytes: 28 random bytes, then the big-endian CRC-32 (IEEE) of
// those 28. The checksum lets Parse reject a truncated or mistyped key
// without touching the database, and together with the fixed prefix lets
// secret scanners recognise a real key with few false positives.
//
// The checksum is not a security control: anyone can compute it. What
// protects a key is its 224 random bits, and only its SHA-256 is stored.
package apikey

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

// Prefix is the literal start of every key; it routes a bearer value to key
// auth and lets secret scanners match keys.
const Prefix = "mk_"

// Length is the length in bytes of every key: Prefix plus 43 base64url characters.
const Length = 46 // untyped, unlike len(Prefix)+encodedLen, so it mixes with any integer type

// The build fails here if Length stops matching Prefix and encodedLen.
var _ = [1]struct{}{}[Length-len(Prefix)-encodedLen]

const (
	randomLen   = 28                      // random bytes in a key: 224 bits of entropy
	checksumLen = 4                       // CRC-32 of the random bytes, big-endian
	payloadLen  = randomLen + checksumLen // 32 bytes behind the encoded part
	encodedLen  = 43                      // base64.RawURLEncoding.EncodedLen(payloadLen)

	// displayLen is how many secret characters DisplayPrefix shows: enough
	// for a user to tell keys apart, far too few (48 bits) to matter.
	displayLen = 8
)

// ErrMalformed reports a key of the wrong length, prefix or alphabet, or a
// non-canonical encoding.
var ErrMalformed = errors.New("apikey: malformed key")

// ErrChecksum reports a well-formed key whose checksum does not match, most
// likely a mistyped or corrupted key.
var ErrChecksum = errors.New("apikey: key checksum mismatch")

// invalidChar marks a byte outside the base64url alphabet in decodeTable.
// Its top bits are set, which no 6-bit value has, so Parse can OR all the
// looked-up values together and check once at the end.
const invalidChar = 0xFF

// decodeTable maps each byte to its 6-bit base64url value, or invalidChar.
// Parse uses it instead of encoding/base64 because the standard decoder
// needs a []byte destination and source, and converting the key would
// allocate on every request.
var decodeTable = func() [256]byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var table [256]byte
	for i := range table {
		table[i] = invalidChar
	}
	for i := 0; i < len(alphabet); i++ {
		table[alphabet[i]] = byte(i)
	}
	return table
}()

// Generate returns a new random key.
func Generate() (string, error) {
	var random [randomLen]byte
	if _, err := rand.Read(random[:]); err != nil {
		return "", fmt.Errorf("generate api key: %w", err)
	}
	return encode(random), nil
}

// encode builds the key for the given random bytes: it appends their
// checksum and encodes the result.
func encode(random [randomLen]byte) string {
	var payload [payloadLen]byte
	copy(payload[:], random[:])
	binary.BigEndian.PutUint32(payload[randomLen:], checksum(&payload))
	return Prefix + base64.RawURLEncoding.EncodeToString(payload[:])
}

// Parse checks a presented key's shape and checksum without allocating. It
// returns ErrMalformed (wrong length, prefix or alphabet, non-canonical
// encoding) or ErrChecksum (well-formed but checksum mismatch).
func Parse(key string) error {
	if len(key) != Length || key[:len(Prefix)] != Prefix {
		return ErrMalformed
	}
	payload, ok := decode(key[len(Prefix):])
	if !ok {
		return ErrMalformed
	}
	if checksum(&payload) != binary.BigEndian.Uint32(payload[randomLen:]) {
		return ErrChecksum
	}
	return nil
}

// checksum returns the CRC-32 (IEEE) of the random part of payload, the same
// value as crc32.ChecksumIEEE. It walks crc32.IEEETable itself because
// ChecksumIEEE calls through a function variable, so escape analysis moves
// its argument, the decoded key, to the heap: one allocation per request.
func checksum(payload *[payloadLen]byte) uint32 {
	crc := ^uint32(0)
	for _, b := range payload[:randomLen] {
		crc = crc32.IEEETable[byte(crc)^b] ^ crc>>8
	}
	return ^crc
}

// decode decodes the 43 base64url characters of a key into its 32 bytes.
// It reports false for a character outside the alphabet or a non-canonical
// last character. The caller has checked the length.
func decode(encoded string) (payload [payloadLen]byte, ok bool) {
	var seen byte // OR of every looked-up value: invalidChar bits survive
	// Ten full groups: four characters carry three bytes.
	for group := 0; group < 10; group++ {
		c0 := decodeTable[encoded[4*group]]
		c1 := decodeTable[encoded[4*group+1]]
		c2 := decodeTable[encoded[4*group+2]]
		c3 := decodeTable[encoded[4*group+3]]
		seen |= c0 | c1 | c2 | c3
		bits := uint32(c0)<<18 | uint32(c1)<<12 | uint32(c2)<<6 | uint32(c3)
		payload[3*group] = byte(bits >> 16)
		payload[3*group+1] = byte(bits >> 8)
		payload[3*group+2] = byte(bits)
	}
	// The last three characters carry 18 bits for the final two bytes.
	c0 := decodeTable[encoded[40]]
	c1 := decodeTable[encoded[41]]
	c2 := decodeTable[encoded[42]]
	seen |= c0 | c1 | c2
	if seen&^0x3F != 0 {
		return payload, false
	}
	// The 2 spare bits must be zero. Otherwise four different last
	// characters would decode to the same bytes, and changing the last
	// character of a valid key could still pass the checksum.
	if c2&0x03 != 0 {
		return payload, false
	}
	bits := uint32(c0)<<10 | uint32(c1)<<4 | uint32(c2)>>2
	payload[30] = byte(bits >> 8)
	payload[31] = byte(bits)
	return payload, true
}

// LooksLikeKey reports whether s starts with Prefix: used to route an
// Authorization: Bearer value to key auth rather than JWT auth.
func LooksLikeKey(s string) bool {
	return strings.HasPrefix(s, Prefix)
}

// DisplayPrefix returns Prefix + the first 8 characters of the secret (for a
// well-formed key), the part that may be stored and shown to identify a key.
// It returns "" for input too short or without Prefix, so that a caller
// never shows, logs or stores part of some other secret.
func DisplayPrefix(key string) string {
	const n = len(Prefix) + displayLen
	if len(key) < n || !LooksLikeKey(key) {
		return ""
	}
	return key[:n]
}

package apikey

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
)

// alphabet is the base64url alphabet, spelled out here rather than taken
// from the package so the tests do not share a mistake with it.
const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// Keys computed independently (Python: zlib.crc32, base64.urlsafe_b64encode,
// hashlib.sha256) for fixed random parts.
var knownKeys = []struct {
	random  [randomLen]byte
	key     string
	hashHex string
}{
	{
		random:  [randomLen]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27},
		key:     "mk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaG9cICF0",
		hashHex: "8a26b5249a87798d7ed39de84ab6fa5b4f2ebffd45fb824c8e5e3ca2ea34e67c",
	},
	{
		random:  [randomLen]byte{},
		key:     "mk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAIBwd-k",
		hashHex: "f07cdc9ab9febcc6a676f65afabf2dccac1812a8f846b3e31b03c9e4d8fce9f7",
	},
	{
		random:  [randomLen]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		key:     "mk______________________________________4DjIx0",
		hashHex: "f5fc2128ea379e653e613adc3de1597886475aff57b8ea3505bbe98741f0dd18",
	},
}

// referenceParse is Parse written with the standard library: the oracle the
// hand-written decoder is checked against.
func referenceParse(key string) error {
	if len(key) != Length || !strings.HasPrefix(key, Prefix) {
		return ErrMalformed
	}
	// Strict rejects non-zero spare bits; the length check catches the
	// \r and \n that DecodeString silently skips.
	payload, err := base64.RawURLEncoding.Strict().DecodeString(key[len(Prefix):])
	if err != nil || len(payload) != payloadLen {
		return ErrMalformed
	}
	if crc32.ChecksumIEEE(payload[:randomLen]) != binary.BigEndian.Uint32(payload[randomLen:]) {
		return ErrChecksum
	}
	return nil
}

func mustGenerate(t testing.TB) string {
	t.Helper()
	key, err := Generate()
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return key
}

func TestGenerateFormat(t *testing.T) {
	t.Parallel()
	for range 100 {
		key := mustGenerate(t)
		if len(key) != Length {
			t.Fatalf("len(%q) = %d, want %d", key, len(key), Length)
		}
		if !strings.HasPrefix(key, "mk_") {
			t.Fatalf("%q does not start with mk_", key)
		}
		for i, c := range key[len(Prefix):] {
			if !strings.ContainsRune(alphabet, c) {
				t.Fatalf("%q: character %d (%q) is not base64url", key, len(Prefix)+i, c)
			}
		}
		if err := Parse(key); err != nil {
			t.Fatalf("Parse(%q) = %v, want nil", key, err)
		}
		if err := referenceParse(key); err != nil {
			t.Fatalf("reference parse of %q = %v, want nil", key, err)
		}
		if !LooksLikeKey(key) {
			t.Fatalf("LooksLikeKey(%q) = false", key)
		}
		if got := DisplayPrefix(key); len(got) != 11 || got != key[:11] || !strings.HasPrefix(got, Prefix) {
			t.Fatalf("DisplayPrefix(%q) = %q, want %q", key, got, key[:11])
		}
	}
}

func TestGenerateUnique(t *testing.T) {
	t.Parallel()
	const n = 10_000
	seen := make(map[string]bool, n)
	for range n {
		key := mustGenerate(t)
		if seen[key] {
			t.Fatalf("Generate returned %q twice", key)
		}
		seen[key] = true
	}
}

func TestKnownKeys(t *testing.T) {
	t.Parallel()
	for _, known := range knownKeys {
		if got := encode(known.random); got != known.key {
			t.Errorf("encode(%x) = %q, want %q", known.random, got, known.key)
		}
		if err := Parse(known.key); err != nil {
			t.Errorf("Parse(%q) = %v, want nil", known.key, err)
		}
	}
}

func TestChecksumMatchesStdlib(t *testing.T) {
	t.Parallel()
	var payload [payloadLen]byte
	for i := range 1000 {
		for j := range payload {
			payload[j] = byte(i*31 + j*7 + i*j)
		}
		if got, want := checksum(&payload), crc32.ChecksumIEEE(payload[:randomLen]); got != want {
			t.Fatalf("checksum(%x) = %08x, want %08x", payload, got, want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	valid := knownKeys[0].key
	secret := valid[len(Prefix):]

	// Same decoded bytes as valid, but with a spare bit set in the last
	// character: a lenient decoder would accept it.
	last := strings.IndexByte(alphabet, valid[Length-1])
	nonCanonical := valid[:Length-1] + string(alphabet[last|1])
	if lenient, _ := base64.RawURLEncoding.DecodeString(nonCanonical[len(Prefix):]); encodeRaw(lenient) != secret {
		t.Fatalf("test setup: %q does not decode like %q", nonCanonical, valid)
	}

	// Valid encoding of a payload whose checksum does not match.
	var corrupt [payloadLen]byte
	copy(corrupt[:], knownKeys[0].random[:])
	binary.BigEndian.PutUint32(corrupt[randomLen:], 0xdeadbeef)
	badChecksum := Prefix + encodeRaw(corrupt[:])

	tests := []struct {
		name string
		key  string
		want error
	}{
		{"empty", "", ErrMalformed},
		{"prefix only", Prefix, ErrMalformed},
		{"uppercase prefix", "MK_" + secret, ErrMalformed},
		{"other prefix", "sk_" + secret, ErrMalformed},
		{"no prefix", secret + "abc", ErrMalformed},
		{"one short", valid[:Length-1], ErrMalformed},
		{"one long", valid + "A", ErrMalformed},
		{"padded", valid + "=", ErrMalformed},
		{"plus", valid[:10] + "+" + valid[11:], ErrMalformed},
		{"slash", valid[:10] + "/" + valid[11:], ErrMalformed},
		{"equals", valid[:10] + "=" + valid[11:], ErrMalformed},
		{"space", valid[:10] + " " + valid[11:], ErrMalformed},
		{"newline", valid[:10] + "\n" + valid[11:], ErrMalformed},
		{"NUL", valid[:10] + "\x00" + valid[11:], ErrMalformed},
		{"byte 0xff", valid[:10] + "\xff" + valid[11:], ErrMalformed},
		{"non-ASCII same length", valid[:10] + "é" + valid[12:], ErrMalformed},
		{"non-ASCII last", valid[:Length-2] + "é", ErrMalformed},
		{"trailing space", valid[:Length-1] + " ", ErrMalformed},
		{"non-canonical last char", nonCanonical, ErrMalformed},
		{"bad checksum", badChecksum, ErrChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := Parse(tt.key); !errors.Is(err, tt.want) {
				t.Errorf("Parse(%q) = %v, want %v", tt.key, err, tt.want)
			}
			if err := referenceParse(tt.key); !errors.Is(err, tt.want) {
				t.Errorf("test case is wrong: reference parse of %q = %v, want %v", tt.key, err, tt.want)
			}
		})
	}
}

// encodeRaw is the standard library's encoding, for building test inputs.
func encodeRaw(payload []byte) string {
	return base64.RawURLEncoding.EncodeToString(payload)
}

// TestParseRejectsEverySingleCharChange proves what the checksum is for: no
// single mistyped character, anywhere, passes.
func TestParseRejectsEverySingleCharChange(t *testing.T) {
	t.Parallel()
	keys := []string{mustGenerate(t)}
	for _, known := range knownKeys {
		keys = append(keys, known.key)
	}
	for _, key := range keys {
		changed := []byte(key)
		for pos := range Length {
			for _, c := range []byte(alphabet) {
				if c == key[pos] {
					continue
				}
				changed[pos] = c
				err := Parse(string(changed))
				if err == nil {
					t.Errorf("Parse accepts %q, %q with position %d changed to %q", changed, key, pos, c)
				} else if pos < len(Prefix) && err != ErrMalformed {
					t.Errorf("Parse(%q) = %v, want %v", changed, err, ErrMalformed)
				}
				if want := referenceParse(string(changed)); err != want {
					t.Errorf("Parse(%q) = %v, reference says %v", changed, err, want)
				}
			}
			changed[pos] = key[pos]
		}
	}
}

func TestErrorsCarryNoKeyMaterial(t *testing.T) {
	t.Parallel()
	for _, err := range []error{ErrMalformed, ErrChecksum} {
		if strings.Contains(err.Error(), Prefix) || err.Error() == "" {
			t.Errorf("error message %q", err)
		}
	}
	if ErrMalformed == ErrChecksum || errors.Is(ErrMalformed, ErrChecksum) {
		t.Error("ErrMalformed and ErrChecksum must be distinct")
	}
}

func TestLooksLikeKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		value string
		want  bool
	}{
		{knownKeys[0].key, true},
		{"mk_", true},
		{"mk_not-even-a-key", true}, // routed to key auth, which then rejects it
		{"", false},
		{"mk", false},
		{"MK_" + knownKeys[0].key[3:], false},
		{"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.sig", false},
	}
	for _, tt := range tests {
		if got := LooksLikeKey(tt.value); got != tt.want {
			t.Errorf("LooksLikeKey(%q) = %v, want %v", tt.value, got, tt.want)
		}
	}
}

func TestDisplayPrefix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key  string
		want string
	}{
		{knownKeys[0].key, "mk_AAECAwQF"},
		{knownKeys[2].key, "mk_" + "________"},
		{"mk_12345678", "mk_12345678"},
		{"mk_1234567", ""},
		{"", ""},
		{"sk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaG9cICF0", ""},
	}
	for _, tt := range tests {
		if got := DisplayPrefix(tt.key); got != tt.want {
			t.Errorf("DisplayPrefix(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

// TestZeroAllocs guards the hot path: Parse and Hash run on every request.
// Not parallel: AllocsPerRun counts every goroutine's allocations.
func TestZeroAllocs(t *testing.T) {
	valid := mustGenerate(t)
	inputs := map[string]string{
		"valid":     valid,
		"malformed": valid[:20] + "+" + valid[21:],
		"checksum":  knownKeys[0].key[:20] + "B" + knownKeys[0].key[21:],
		"short":     "mk_abc",
	}
	for name, key := range inputs {
		if allocs := testing.AllocsPerRun(1000, func() { _ = Parse(key) }); allocs != 0 {
			t.Errorf("Parse(%s key) allocates %v times, want 0", name, allocs)
		}
		if allocs := testing.AllocsPerRun(1000, func() { _ = Hash(key) }); allocs != 0 {
			t.Errorf("Hash(%s key) allocates %v times, want 0", name, allocs)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	key := mustGenerate(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := Parse(key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseAndHash(b *testing.B) {
	key := mustGenerate(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := Parse(key); err != nil {
			b.Fatal(err)
		}
		_ = Hash(key)
	}
}

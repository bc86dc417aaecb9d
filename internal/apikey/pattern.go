package apikey

// SecretScanningPattern is the regular expression a secret scanner (GitHub's
// partner program) registers to find keys: the prefix, then 42 base64url
// characters, then a last character that carries the final 4 bits of the
// checksum and two zero padding bits, so only 16 of the 64 letters can end
// a key. The checksum itself is beyond a regular expression: the report
// endpoint checks it (Parse) before any lookup. README.md quotes it.
const SecretScanningPattern = `mk_[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]`

// SecretScanningBoundary is what must surround a match, so that a key is
// not found inside a longer token: a character outside the key alphabet,
// or the start or end of the text.
const SecretScanningBoundary = `[^A-Za-z0-9_-]`

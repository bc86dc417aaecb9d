// Package handover carries a rotated key's secret to the WebSocket
// connections of the key it replaces, across keyhub processes, without the
// secret ever being readable outside the process that holds the socket.
//
// Each connection that may receive a secret gets an Inbox: an X25519 key
// pair made when it is admitted. Its public half is published with the
// connection's lease (ws_connections.handover_key); the private half never
// leaves the process's memory. A refresh on any process seals the new
// secret to each public key with HPKE (RFC 9180: DHKEM(X25519,
// HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305), bound to the connection
// and the new key's id, and only the sealed bytes travel through
// PostgreSQL's change feed. Whoever reads the database, its NOTIFY traffic
// or the logs learns nothing that opens the secret; a sealed secret meant
// for one connection does not open in another, nor under another key id.
package handover

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// MaxSealed bounds a sealed secret (an X25519 share, the secret and a tag
// are ≈100 bytes): anything longer is not ours.
const MaxSealed = 512

var (
	kdf  = hpke.HKDFSHA256()
	aead = hpke.ChaCha20Poly1305()
)

// info binds a sealed secret to one connection and one new key: the
// sealer and the opener must agree on both, or opening fails.
func info(connectionID, keyID uuid.UUID) []byte {
	out := make([]byte, 0, 64)
	out = append(out, "keyhub key_rotated v1\x00"...)
	out = append(out, connectionID[:]...)
	return append(out, keyID[:]...)
}

// Inbox is one connection's private key. It is safe for concurrent use
// (it never changes).
//
// It keeps the key as bytes, not as the *ecdh.PrivateKey it was made as
// (≈200 B in four allocations): every admitted key connection holds an
// Inbox, and Open, which needs the ecdh form back, runs only when a
// rotated secret arrives.
type Inbox struct {
	private [32]byte // the X25519 scalar
	public  [32]byte // its public point, published with the lease
}

// NewInbox makes a fresh key pair.
func NewInbox() (*Inbox, error) {
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("handover key: %w", err)
	}
	in := new(Inbox)
	copy(in.private[:], key.Bytes())
	copy(in.public[:], key.PublicKey().Bytes())
	return in, nil
}

// PublicKey is what the connection publishes (a copy: the caller may keep
// or change it); nil for a nil Inbox (a connection that cannot receive a
// secret).
func (in *Inbox) PublicKey() []byte {
	if in == nil {
		return nil
	}
	return bytes.Clone(in.public[:])
}

// Open recovers a secret sealed to this inbox for connectionID and keyID.
func (in *Inbox) Open(sealed []byte, connectionID, keyID uuid.UUID) (string, error) {
	if in == nil {
		return "", errors.New("this connection has no handover key")
	}
	if len(sealed) > MaxSealed {
		return "", errors.New("sealed secret too long")
	}
	key, err := ecdh.X25519().NewPrivateKey(in.private[:])
	if err != nil {
		return "", fmt.Errorf("handover key: %w", err)
	}
	private, err := hpke.NewDHKEMPrivateKey(key)
	if err != nil {
		return "", err
	}
	secret, err := hpke.Open(private, kdf, aead, info(connectionID, keyID), sealed)
	if err != nil {
		return "", fmt.Errorf("open sealed secret: %w", err)
	}
	return string(secret), nil
}

// Seal seals secret to the connection whose published key is publicKey.
func Seal(publicKey []byte, connectionID, keyID uuid.UUID, secret string) ([]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(publicKey)
	if err != nil {
		return nil, fmt.Errorf("handover key of connection %s: %w", connectionID, err)
	}
	recipient, err := hpke.NewDHKEMPublicKey(pub)
	if err != nil {
		return nil, err
	}
	sealed, err := hpke.Seal(recipient, kdf, aead, info(connectionID, keyID), []byte(secret))
	if err != nil {
		return nil, fmt.Errorf("seal for connection %s: %w", connectionID, err)
	}
	return sealed, nil
}

package ws_test

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A client may send its first message in the same packet as the upgrade
// request, before it has read the 101: the bytes net/http had already read
// must survive the switch to the WebSocket's own (smaller) buffers.
func TestFirstMessageRightBehindHandshake(t *testing.T) {
	t.Parallel()
	env, _, key := setup(t, nil)
	payload, err := json.Marshal(map[string]string{"type": "auth", "api_key": key.Secret})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Dial("tcp", strings.TrimPrefix(env.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))

	handshake := "GET /ws/daemon HTTP/1.1\r\nHost: " + strings.TrimPrefix(env.URL, "http://") + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := raw.Write(append([]byte(handshake), maskedTextFrame(payload)...)); err != nil {
		t.Fatal(err)
	}

	r := bufio.NewReader(raw)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	var header [2]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		t.Fatalf("no answer to the first message: %v", err)
	}
	if header[0] != 0x81 { // FIN + text
		t.Fatalf("first frame is not a text message: % x", header)
	}
	n := int(header[1] & 0x7f)
	if n == 126 {
		var ext [2]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			t.Fatal(err)
		}
		n = int(binary.BigEndian.Uint16(ext[:]))
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(msg), `"type":"welcome"`) {
		t.Fatalf("want a welcome, got %s", msg)
	}
}

// maskedTextFrame is payload as one client-to-server text frame (masked,
// as RFC 6455 requires of clients).
func maskedTextFrame(payload []byte) []byte {
	mask := [4]byte{1, 2, 3, 4}
	frame := []byte{0x81}
	switch {
	case len(payload) < 126:
		frame = append(frame, 0x80|byte(len(payload)))
	default:
		frame = append(frame, 0x80|126, byte(len(payload)>>8), byte(len(payload)))
	}
	frame = append(frame, mask[:]...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	return frame
}

package ws

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// Buffer sizes of an upgraded connection. net/http hands a hijacked
// connection over with a 4 KiB reader and a 4 KiB writer, which the
// WebSocket library keeps for the connection's life: 8 KiB of an idle
// daemon's ~23 KiB. Messages here are small (a welcome, pongs, events of a
// few hundred bytes), and bufio passes larger reads and writes straight
// through, so small buffers cost an extra syscall only for the rare bigger
// message. Clients send less than the server (pings, whoami), hence the
// smaller reader.
const (
	readBufferSize  = 512
	writeBufferSize = 1 << 10
)

// leanHijacker gives websocket.Accept smaller buffers than net/http's.
type leanHijacker struct {
	http.ResponseWriter
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (w leanHijacker) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack takes the connection from net/http and carries over what its
// reader already holds: a client may send its first message right behind
// the handshake, before it has read the answer.
func (w leanHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil { // nothing is buffered after a hijack; to be sure
		conn.Close()
		return nil, nil, err
	}
	pending, _ := brw.Reader.Peek(brw.Reader.Buffered())
	pending = bytes.Clone(pending)
	reader := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(pending), conn), max(readBufferSize, len(pending)))
	// Buffer the pending bytes now: Accept resets the reader onto the bare
	// connection, keeping only what is buffered.
	if _, err := reader.Peek(len(pending)); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, bufio.NewReadWriter(reader, bufio.NewWriterSize(conn, writeBufferSize)), nil
}

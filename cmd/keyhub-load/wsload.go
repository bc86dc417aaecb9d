package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// socket is one idle daemon connection; closed is done once the server
// has closed it (or it failed).
type socket struct {
	conn   *websocket.Conn
	closed chan struct{}
}

// openSockets opens perKey authenticated daemon connections for each key,
// concurrently (at most parallel dials at once), and waits for each
// welcome. Each socket keeps a reader running, as a daemon does: it answers
// the server's pings and notices the close.
func openSockets(ctx context.Context, wsURL string, keys []string, perKey, parallel int) ([][]*socket, error) {
	out := make([][]*socket, len(keys))
	for i := range out {
		out[i] = make([]*socket, perKey)
	}
	// One shared transport: the dial is an HTTP/1.1 upgrade that leaves no
	// idle connection behind.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: parallel}}
	type slot struct{ key, n int }
	slots := make(chan slot)
	errs := make(chan error, parallel)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range slots {
				sock, err := dialSocket(ctx, client, wsURL, keys[s.key])
				if err != nil {
					errs <- fmt.Errorf("socket %d of key %d: %w", s.n, s.key, err)
					return
				}
				out[s.key][s.n] = sock
			}
		}()
	}
	var err error
feed:
	for n := range perKey {
		for key := range keys {
			select {
			case slots <- slot{key, n}:
			case err = <-errs:
				break feed
			}
		}
	}
	close(slots)
	wg.Wait()
	if err == nil && len(errs) > 0 {
		err = <-errs
	}
	return out, err
}

func dialSocket(ctx context.Context, client *http.Client, wsURL, key string) (*socket, error) {
	dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(dialCtx, wsURL, &websocket.DialOptions{
		HTTPClient: client,
		HTTPHeader: http.Header{"X-API-Key": {key}},
	})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	if _, msg, err := conn.Read(dialCtx); err != nil {
		conn.CloseNow()
		return nil, fmt.Errorf("welcome: %w", err)
	} else if len(msg) == 0 {
		conn.CloseNow()
		return nil, fmt.Errorf("empty welcome")
	}
	s := &socket{conn: conn, closed: make(chan struct{})}
	go func() {
		defer close(s.closed)
		for {
			if _, _, err := conn.Read(ctx); err != nil {
				return
			}
		}
	}()
	return s, nil
}

// closeAll closes every socket still open and waits for their readers.
func closeAll(sockets [][]*socket) {
	for _, group := range sockets {
		for _, s := range group {
			if s != nil {
				s.conn.CloseNow()
				<-s.closed
			}
		}
	}
}

// waitClosed waits until every socket of group is closed and returns when
// the last one was, or an error after timeout.
func waitClosed(group []*socket, timeout time.Duration) (time.Time, error) {
	deadline := time.After(timeout)
	for i, s := range group {
		select {
		case <-s.closed:
		case <-deadline:
			return time.Time{}, fmt.Errorf("socket %d of %d still open after %s", i, len(group), timeout)
		}
	}
	return time.Now(), nil
}

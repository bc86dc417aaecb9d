package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// The HTTP driver is a minimal HTTP/1.1 client over keep-alive connections:
// one pre-built request written, one response read and discarded. It costs
// the client a few microseconds per request, so on a 2-core machine shared
// with the server the client takes as little as possible from it (net/http's
// client costs several times more) and the ratios between paths stay close
// to the server's own.

// request builds the bytes of a GET request with the given headers.
func request(host, path string, headers map[string]string) []byte {
	return rawRequest("GET", host, path, headers, nil)
}

// postJSON builds the bytes of a POST request carrying body as JSON.
func postJSON(host, path string, headers map[string]string, body []byte) []byte {
	return rawRequest("POST", host, path, headers, body)
}

func rawRequest(method, host, path string, headers map[string]string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: keyhub-load\r\n", method, path, host)
	for name, value := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", name, value)
	}
	if body != nil {
		fmt.Fprintf(&b, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// client is one keep-alive connection.
type client struct {
	addr string
	conn net.Conn
	r    *bufio.Reader
}

func (c *client) do(req []byte) (status int, err error) {
	if c.conn == nil {
		if c.conn, err = net.Dial("tcp", c.addr); err != nil {
			return 0, err
		}
		c.r = bufio.NewReaderSize(c.conn, 16<<10)
	}
	if _, err = c.conn.Write(req); err == nil {
		var keepAlive bool
		status, keepAlive, err = readResponse(c.r)
		if err == nil && !keepAlive {
			err = errors.New("server closed the connection")
		}
	}
	if err != nil {
		c.close()
	}
	return status, err
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// readResponse reads one response and discards its body (Content-Length or
// chunked).
func readResponse(r *bufio.Reader) (status int, keepAlive bool, err error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	length, chunked, keepAlive := -1, false, true
	for {
		line, err = r.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		if len(line) <= 2 {
			break
		}
		name, value, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			keepAlive = !bytes.EqualFold(value, []byte("close"))
		}
	}
	switch {
	case chunked:
		err = discardChunked(r)
	case length >= 0:
		_, err = r.Discard(length)
	default:
		return status, false, nil // body until close
	}
	return status, keepAlive, err
}

func discardChunked(r *bufio.Reader) error {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		sizeField, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		size, err := strconv.ParseInt(string(sizeField), 16, 64)
		if err != nil {
			return fmt.Errorf("bad chunk size %q", line)
		}
		if size == 0 {
			// Trailers, then the blank line.
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(line) <= 2 {
					return nil
				}
			}
		}
		if _, err := r.Discard(int(size) + 2); err != nil {
			return err
		}
	}
}

// closedLoop runs conns connections, each sending req as soon as the
// previous answer arrived, for warmup (not counted) then measure.
func closedLoop(ctx context.Context, addr string, req []byte, conns int, warmup, measure time.Duration) (sample, error) {
	start := time.Now()
	from, until := start.Add(warmup), start.Add(warmup+measure)
	return runWorkers(conns, func(worker int, c *client, s *sample) error {
		for ctx.Err() == nil {
			sent := time.Now()
			if !sent.Before(until) {
				return nil
			}
			status, err := c.do(req)
			if err != nil {
				return err
			}
			if !sent.Before(from) {
				s.add(status, time.Since(sent))
			}
		}
		return ctx.Err()
	}, addr, measure)
}

// openLoop sends req at a fixed total rate whatever the answers take
// (requests are scheduled, not sent on answer), spread over conns
// connections: worker k sends the requests scheduled at start + (i·conns+k)
// / rate. A request's latency runs from its scheduled time when the worker
// was still busy with the previous one (the wait is the server's doing),
// and from its actual send otherwise (the client's timer lateness is not the
// server's doing). That keeps coordinated omission out of the p99.
func openLoop(ctx context.Context, addr string, req []byte, rate float64, conns int, warmup, measure time.Duration) (sample, error) {
	interval := time.Duration(float64(time.Second) * float64(conns) / rate)
	start := time.Now()
	from, until := start.Add(warmup), start.Add(warmup+measure)
	return runWorkers(conns, func(worker int, c *client, s *sample) error {
		next := start.Add(time.Duration(float64(time.Second) * float64(worker) / rate))
		for ; next.Before(until) && ctx.Err() == nil; next = next.Add(interval) {
			origin := next
			if wait := time.Until(next); wait > 0 {
				time.Sleep(wait)
				origin = time.Now()
			}
			status, err := c.do(req)
			if err != nil {
				return err
			}
			if !next.Before(from) {
				s.add(status, time.Since(origin))
			}
		}
		return ctx.Err()
	}, addr, measure)
}

// runWorkers runs conns workers, each with its own connection and sample,
// and merges what they measured.
func runWorkers(conns int, work func(worker int, c *client, s *sample) error, addr string, measure time.Duration) (sample, error) {
	var wg sync.WaitGroup
	samples := make([]sample, conns)
	errs := make([]error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &client{addr: addr}
			defer c.close()
			samples[i].latencies = make([]time.Duration, 0, 1<<16)
			errs[i] = work(i, c, &samples[i])
		}()
	}
	wg.Wait()
	total := sample{elapsed: measure}
	for _, s := range samples {
		total.merge(s)
	}
	if err := errors.Join(errs...); err != nil && !errors.Is(err, io.EOF) {
		return total, err
	}
	return total, nil
}

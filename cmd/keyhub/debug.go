package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// startDebug serves Go's profiler on its own listener (DEBUG_ADDR), so
// profiles and forced GCs (heap?gc=1, used by make loadtest to measure
// memory per WebSocket) are never reachable through the public one. The
// handlers are registered on a private mux: importing net/http/pprof also
// adds them to http.DefaultServeMux, which keyhub never serves.
func startDebug(addr string, log *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("DEBUG_ADDR %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Warn("debug listener stopped", "err", err)
		}
	}()
	log.Warn("pprof is served on DEBUG_ADDR; keep it on loopback", "addr", ln.Addr().String())
	return srv, nil
}

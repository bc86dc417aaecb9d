package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/dbgen"
	"github.com/keyhub/keyhub/internal/postgres"
)

// The reference is the physical limit of keyhub's stack for GET /v1/keys:
// net/http and a pgx pool (postgres.Open, keyhub's) running the same list query
// (dbgen.ListKeys) for one owner and answering the same rows in the same
// wire shape, with nothing else: no authentication, no middleware, no log
// line, no cursor. keyhub's listing is measured as a fraction of it. It
// runs in a process of its own (keyhub-load -serve-reference), like keyhub,
// so that neither shares a Go runtime with the load client.

// referenceHandler answers GET /v1/keys?limit=N with the owner's first N
// keys, as keyhub would.
func referenceHandler(pool *pgxpool.Pool, ownerID uuid.UUID) http.Handler {
	q := dbgen.New()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
		if err != nil || limit < 1 {
			limit = 50
		}
		rows, err := q.ListKeys(r.Context(), pool, dbgen.ListKeysParams{OwnerID: ownerID, MaxRows: int32(limit + 1)})
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		rows = rows[:min(len(rows), limit)]
		out := api.KeyList{Data: make([]api.Key, len(rows))}
		for i, k := range rows {
			key := api.Key{ID: k.ID, UserID: k.UserID, Name: k.Name, Prefix: k.KeyPrefix, Scopes: k.Scopes,
				Status: k.Status, CreatedAt: api.Timestamp(k.CreatedAt), ExpiresAt: timestamp(k.ExpiresAt),
				LastUsedAt: timestamp(k.LastUsedAt), RevokedAt: timestamp(k.RevokedAt), AutoRotateBefore: k.AutoRotateBeforeSeconds,
				Metadata: k.Metadata, AllowedCIDRs: make([]string, len(k.AllowedCidrs)), DisabledAt: timestamp(k.DisabledAt)}
			if k.ReplacedBy.Valid {
				key.ReplacedBy = &k.ReplacedBy.UUID
			}
			if k.LastUsedIp.IsValid() {
				ip := k.LastUsedIp.String()
				key.LastUsedIP = &ip
			}
			key.LastUsedUserAgent = nonEmpty(k.LastUsedUserAgent)
			if k.CreatorUserID.Valid {
				key.CreatedBy = &api.KeyCreator{UserID: k.CreatorUserID.UUID, Email: nonEmpty(k.CreatorEmail), KeyPrefix: nonEmpty(k.CreatorKeyPrefix)}
				if k.CreatorKeyID.Valid {
					key.CreatedBy.KeyID = &k.CreatorKeyID.UUID
				}
			}
			for j, n := range k.AllowedCidrs {
				key.AllowedCIDRs[j] = n.String()
			}
			out.Data[i] = key
		}
		body, err := json.Marshal(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
}

// nonEmpty is s, or nil when it is nil or empty (as keyhub answers).
func nonEmpty(s *string) *string {
	if s == nil || *s == "" {
		return nil
	}
	return s
}

func timestamp(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	at := api.Timestamp(*t)
	return &at
}

// serveReference is the reference process: it serves referenceHandler on
// addr until ctx ends.
func serveReference(ctx context.Context, addr, dbURL, owner string) error {
	ownerID, err := uuid.Parse(owner)
	if err != nil {
		return fmt.Errorf("-reference-owner: %w", err)
	}
	pool, err := postgres.Open(ctx, dbURL) // keyhub's own pool settings: the reference measures what is above the pool
	if err != nil {
		return err
	}
	defer pool.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: referenceHandler(pool, ownerID), ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// referenceServer is the reference process, started from this binary.
type referenceServer struct {
	cmd    *exec.Cmd
	addr   string
	exited chan struct{}
}

// startReference starts the reference process on a free loopback port
// against keyhub's database, listing ownerID's keys, and waits until it
// answers.
func startReference(ctx context.Context, dbURL string, ownerID uuid.UUID) (*referenceServer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-serve-reference", addr, "-db", dbURL, "-reference-owner", ownerID.String())
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the reference: %w", err)
	}
	s := &referenceServer{cmd: cmd, addr: addr, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v1/keys?limit=1")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("the reference exited at start")
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("the reference is not answering after 10s")
		}
	}
}

// cpuTime is the CPU time the reference process has used.
func (s *referenceServer) cpuTime() (time.Duration, error) { return processCPU(s.cmd.Process.Pid) }

// stop ends the reference process.
func (s *referenceServer) stop() {
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

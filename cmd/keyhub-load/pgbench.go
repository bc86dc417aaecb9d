package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// findPgbench looks on PATH, then where Debian puts PostgreSQL's binaries.
func findPgbench(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p, nil
	}
	if dir := os.Getenv("PG_BINDIR"); dir != "" {
		return filepath.Join(dir, "pgbench"), nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	if len(matches) == 0 {
		return "", fmt.Errorf("pgbench not found (Debian: it comes with the postgresql server package); set -pgbench")
	}
	slices.Sort(matches)
	return matches[len(matches)-1], nil
}

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// pgbenchSelectOnly runs pgbench's select-only script with prepared
// statements at the given concurrency, on a database of its own (scale 1),
// and returns its transactions per second.
func pgbenchSelectOnly(ctx context.Context, bin, baseURL string, clients int, duration time.Duration) (float64, error) {
	dbURL, err := freshDatabase(ctx, baseURL, "keyhub_pgbench")
	if err != nil {
		return 0, err
	}
	if out, err := exec.CommandContext(ctx, bin, "-i", "-q", "-s", "1", dbURL).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("pgbench -i: %w\n%s", err, out)
	}
	threads := min(clients, 2)
	out, err := exec.CommandContext(ctx, bin, "-n", "-S", "-M", "prepared",
		"-c", strconv.Itoa(clients), "-j", strconv.Itoa(threads),
		"-T", strconv.Itoa(max(1, int(duration.Round(time.Second)/time.Second))), dbURL).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench: %w\n%s", err, out)
	}
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no tps in pgbench's output:\n%s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keyhub/keyhub/api/client"
)

// call runs one API call and prints its answer: with --json the API's
// JSON byte for byte, else what human prints from the decoded value.
func call[T any](ctx context.Context, m *cli, do func(context.Context) (T, error), human func(T)) error {
	var raw []byte
	out, err := do(client.WithRawResponse(ctx, &raw))
	if err != nil {
		return err
	}
	if m.json {
		m.printJSON(raw)
		return nil
	}
	human(out)
	return nil
}

// quietFlag adds -q: print only the IDs of a list, for $(...) in scripts.
func quietFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("q", false, "print only the IDs")
}

// printJSON prints one JSON document on its own line.
func (m *cli) printJSON(raw []byte) {
	m.stdout.Write(bytes.TrimRight(raw, "\n"))
	fmt.Fprintln(m.stdout)
}

// table prints rows under a header, aligned.
func (m *cli) table(header []string, rows [][]string) {
	tw := tabwriter.NewWriter(m.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// fields prints name: value lines, aligned.
func (m *cli) fields(pairs ...string) {
	tw := tabwriter.NewWriter(m.stdout, 0, 4, 1, ' ', 0)
	for i := 0; i+1 < len(pairs); i += 2 {
		fmt.Fprintf(tw, "%s:\t%s\n", pairs[i], pairs[i+1])
	}
	tw.Flush()
}

// when prints a time to the second, in UTC; "-" for none.
func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// deref is what s points to; "" for nil.
func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// deliverSecret shows a new key's secret once: written to a new file
// with mode 0600 when out is set, else printed, with a warning on stderr
// either way that keyhub will not show it again.
func (m *cli) deliverSecret(secret, out string) error {
	if out == "" {
		fmt.Fprintf(m.stdout, "key: %s\n", secret)
		fmt.Fprintln(m.stderr, "mk: this key is shown only once: store it now (mk login reads it; or a secrets manager)")
		return nil
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("the key was created but not saved (%w): revoke it and try again", err)
	}
	if _, err := fmt.Fprintln(f, secret); err != nil {
		f.Close()
		return fmt.Errorf("the key was created but not saved to %s (%w): revoke it and try again", out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("the key was created but not saved to %s (%w): revoke it and try again", out, err)
	}
	fmt.Fprintf(m.stdout, "key: written to %s (mode 0600)\n", out)
	fmt.Fprintf(m.stderr, "mk: %s holds the only copy of this key: keep it safe\n", out)
	return nil
}

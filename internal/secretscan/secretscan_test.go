package secretscan_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/secretscan"
	"github.com/keyhub/keyhub/internal/secretscan/githubtest"
)

// clock is a settable time.
type clock struct{ now atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.now.Load()) }
func (c *clock) Advance(d time.Duration) { c.now.Add(int64(d)) }
func newClock() *clock {
	c := &clock{}
	c.now.Store(time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func code(err error) keyhub.Code { return keyhub.ErrorCode(err) }
func wantCode(t *testing.T, err error, c keyhub.Code) {
	t.Helper()
	if err == nil || code(err) != c {
		t.Fatalf("got %v, want %s", err, c)
	}
}

var report = []byte(`[{"token":"mk_x","type":"keyhub_api_key","url":"https://github.com/o/r/blob/abc/.env","source":"content"}]`)

func TestVerifyAcceptsGitHubsSignatureOnly(t *testing.T) {
	t.Parallel()
	gh := githubtest.New(t, "k1")
	v := secretscan.NewVerifier(secretscan.Config{KeysURL: gh.URL})
	ctx := context.Background()
	if err := v.Verify(ctx, "k1", gh.Sign(t, "k1", report), report); err != nil {
		t.Fatalf("GitHub's signature refused: %v", err)
	}
	tampered := append([]byte{}, report...)
	tampered[len(tampered)-3] = 'X'
	wantCode(t, v.Verify(ctx, "k1", gh.Sign(t, "k1", report), tampered), keyhub.CodeInvalidSignature)
	wantCode(t, v.Verify(ctx, "", "", report), keyhub.CodeInvalidSignature)
	wantCode(t, v.Verify(ctx, "k1", "", report), keyhub.CodeInvalidSignature)
	wantCode(t, v.Verify(ctx, "k1", "not base64!", report), keyhub.CodeInvalidSignature)
	// A key of our own making, under GitHub's identifier: not GitHub's.
	forger := githubtest.New(t, "k1")
	wantCode(t, v.Verify(ctx, "k1", forger.Sign(t, "k1", report), report), keyhub.CodeInvalidSignature)
	if n := gh.Fetches.Load(); n != 1 {
		t.Fatalf("%d fetches of the key list, want 1 (cached)", n)
	}
}

// An unknown identifier fetches the list again, at most once a minute:
// a key GitHub adds is found, a flood of made-up ones costs one fetch.
func TestUnknownIdentifierRefreshesOncePerMinute(t *testing.T) {
	t.Parallel()
	gh := githubtest.New(t, "k1")
	clk := newClock()
	v := secretscan.NewVerifier(secretscan.Config{KeysURL: gh.URL, Now: clk.Now})
	ctx := context.Background()
	if err := v.Verify(ctx, "k1", gh.Sign(t, "k1", report), report); err != nil {
		t.Fatal(err)
	}
	gh.AddKey(t, "k2") // GitHub rotates
	clk.Advance(secretscan.RefreshInterval)
	if err := v.Verify(ctx, "k2", gh.Sign(t, "k2", report), report); err != nil {
		t.Fatalf("a newly published key refused: %v", err)
	}
	for range 20 {
		wantCode(t, v.Verify(ctx, "made-up", gh.Sign(t, "k1", report), report), keyhub.CodeInvalidSignature)
	}
	if n := gh.Fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2: the made-up identifiers came within a minute of the last fetch", n)
	}
	clk.Advance(secretscan.RefreshInterval)
	wantCode(t, v.Verify(ctx, "made-up", gh.Sign(t, "k1", report), report), keyhub.CodeInvalidSignature)
	if n := gh.Fetches.Load(); n != 3 {
		t.Fatalf("%d fetches, want 3 a minute later", n)
	}
	// Known keys never wait for the budget.
	if err := v.Verify(ctx, "k1", gh.Sign(t, "k1", report), report); err != nil {
		t.Fatal(err)
	}
}

// A key list that cannot be fetched is an outage (the sender retries),
// never a pass; the keys already known keep working.
func TestKeyListDownIsUnavailable(t *testing.T) {
	t.Parallel()
	gh := githubtest.New(t, "k1")
	clk := newClock()
	v := secretscan.NewVerifier(secretscan.Config{KeysURL: gh.URL, Now: clk.Now})
	ctx := context.Background()
	gh.Down.Store(true)
	wantCode(t, v.Verify(ctx, "k1", gh.Sign(t, "k1", report), report), keyhub.CodeUnavailable)
	wantCode(t, v.Verify(ctx, "k1", gh.Sign(t, "k1", report), report), keyhub.CodeUnavailable) // within the minute: no fetch
	if n := gh.Fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
	gh.Down.Store(false)
	clk.Advance(secretscan.RefreshInterval)
	if err := v.Verify(ctx, "k1", gh.Sign(t, "k1", report), report); err != nil {
		t.Fatal(err)
	}
	gh.Down.Store(true)
	clk.Advance(secretscan.RefreshInterval)
	if err := v.Verify(ctx, "k1", gh.Sign(t, "k1", report), report); err != nil {
		t.Fatalf("a known key refused while the list is down: %v", err)
	}
	wantCode(t, v.Verify(ctx, "k9", gh.Sign(t, "k1", report), report), keyhub.CodeUnavailable)
}

func TestParseReport(t *testing.T) {
	t.Parallel()
	matches, err := secretscan.ParseReport([]byte(`[{"token":"mk_a","type":"t","url":"https://u","source":"content","extra":1},{"token":"b"}]`))
	if err != nil || len(matches) != 2 || matches[0] != (secretscan.Match{Token: "mk_a", Type: "t", URL: "https://u", Source: "content"}) || matches[1].Token != "b" {
		t.Fatalf("%+v %v", matches, err)
	}
	for body, c := range map[string]keyhub.Code{
		`{"token":"x"}`:       keyhub.CodeInvalidJSON,
		`null`:                keyhub.CodeInvalidJSON,
		`[{"token":1}]`:       keyhub.CodeInvalidJSON,
		`[{"type":"t"}]`:      keyhub.CodeValidation,
		`[{"token":"x"}] [1]`: keyhub.CodeInvalidJSON,
	} {
		if _, err := secretscan.ParseReport([]byte(body)); code(err) != c {
			t.Errorf("%s: %v, want %s", body, err, c)
		}
	}
}

func TestFeedbackHashesTheToken(t *testing.T) {
	t.Parallel()
	f := secretscan.FeedbackFor(secretscan.Match{Token: "abc", Type: "keyhub_api_key"}, true)
	// sha256("abc")
	if f.TokenHash != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" || f.TokenType != "keyhub_api_key" || f.Label != "true_positive" {
		t.Fatalf("%+v", f)
	}
	if f := secretscan.FeedbackFor(secretscan.Match{Token: "abc"}, false); f.Label != "false_positive" {
		t.Fatalf("%+v", f)
	}
}

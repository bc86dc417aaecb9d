package dashboard_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// TestDashboardKeyUsage (issue 19 item 16): a key's page draws its
// requests of the last 24 h or 7 days, an hourly bar split into ok,
// refused and rate-limited, with the same figures in words and in a
// table; a key never used says so. The bars are judged as ratios of the
// busiest hour, never in pixels, on a laptop, a phone and in dark mode.
func TestDashboardKeyUsage(t *testing.T) {
	t.Parallel()
	// The counts reach the database when the test flushes them.
	env := apitest.NewDev(t, map[string]string{"LAST_USED_FLUSH_INTERVAL": "1h"})
	token := env.Token(t, "uma@example.com")
	setTier(t, env, token, "pro")
	var used, idle api.CreatedKey
	env.Post(t, "/v1/keys", token, map[string]any{"name": "used", "scopes": []string{"keys:read"}}).Want(t, http.StatusCreated, "").JSON(t, &used)
	env.Post(t, "/v1/keys", token, map[string]any{"name": "idle"}).Want(t, http.StatusCreated, "").JSON(t, &idle)
	// This hour, for real: 2 admitted, 1 refused (a scope the key lacks).
	// Hours are counted from this one, so that the figures stay put if
	// the clock passes an hour while the test runs.
	thisHour := time.Now().UTC().Truncate(time.Hour)
	hour := func(ago int) time.Time { return thisHour.Add(-time.Duration(ago) * time.Hour) }
	env.Get(t, "/v1/me", used.Secret).Want(t, http.StatusOK, "")
	env.Get(t, "/v1/me", used.Secret).Want(t, http.StatusOK, "")
	env.Delete(t, "/v1/keys/"+idle.ID.String(), used.Secret).Want(t, http.StatusForbidden, "INSUFFICIENT_SCOPE")
	flushCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := env.App.FlushUsage(flushCtx); err != nil {
		t.Fatal(err)
	}
	// Earlier hours: the busiest (8) 3 h ago, a mixed one 5 h ago, and one
	// three days ago that only the 7-day view shows.
	addUsage(t, env, used.ID.String(), hour(3), 8, 0, 0)
	addUsage(t, env, used.ID.String(), hour(5), 3, 1, 2)
	addUsage(t, env, used.ID.String(), hour(72), 40, 0, 0)

	ctx := tab(t)
	signIn(t, ctx, env.URL+"/dashboard/", "uma@example.com")
	do(t, ctx, "the used key's page",
		chromedp.Navigate(env.URL+"/dashboard/#/keys/"+used.ID.String()),
		chromedp.WaitVisible(chromedp.CSS(`#key-usage-chart svg`)),
	)
	const day = "17 requests in the last 24 h: 13 ok, 2 refused, 2 rate-limited. Busiest hour: 8 requests."
	if got := text(t, ctx, "#key-usage-summary"); got != day {
		t.Errorf("summary %q, want %q", got, day)
	}
	// From 24 h ago (taken down to its hour) to the end of this hour.
	if n := eval[int](t, ctx, `document.querySelectorAll('#key-usage-chart g.hour').length`); n != 25 && n != 24 {
		t.Errorf("%d hourly bars for 24 h", n)
	}
	// Each bar's segments as fractions of the chart's height, by hour.
	bars := func(ago int) map[string]float64 {
		t.Helper()
		js := fmt.Sprintf(`(() => {
			const chart = document.querySelector('#key-usage-chart svg').getBoundingClientRect();
			const g = [...document.querySelectorAll('#key-usage-chart g.hour')].find(g => new Date(g.dataset.hour).getTime() === %d);
			if (!g) return {};
			const out = {};
			for (const r of g.querySelectorAll('rect')) out[r.classList[1]] = r.getBoundingClientRect().height / chart.height;
			return out;
		})()`, hour(ago).UnixMilli())
		return eval[map[string]float64](t, ctx, js)
	}
	near := func(got, want float64) bool { return math.Abs(got-want) < 0.02 }
	for _, c := range []struct {
		ago  int
		want map[string]float64
	}{
		{3, map[string]float64{"ok": 1}},
		{5, map[string]float64{"ok": 3.0 / 8, "refused": 1.0 / 8, "limited": 2.0 / 8}},
		{0, map[string]float64{"ok": 2.0 / 8, "refused": 1.0 / 8}},
		{1, map[string]float64{}},
	} {
		got := bars(c.ago)
		ok := len(got) == len(c.want)
		for class, share := range c.want {
			ok = ok && near(got[class], share)
		}
		if !ok {
			t.Errorf("the bar %d h ago is %v of the chart's height, want %v", c.ago, got, c.want)
		}
	}
	// Oldest on the left: the busiest hour sits left of this hour's bar.
	if !eval[bool](t, ctx, fmt.Sprintf(`(() => { const x = (ms) => [...document.querySelectorAll('#key-usage-chart g.hour')].find(g => new Date(g.dataset.hour).getTime() === ms).querySelector('rect').getBoundingClientRect().x; return x(%d) < x(%d); })()`, hour(3).UnixMilli(), hour(0).UnixMilli())) {
		t.Error("the bars are not in time order, oldest on the left")
	}
	rows := `[...document.querySelectorAll('#key-usage-table tbody tr')].map(r => [...r.cells].slice(1).map(c => c.textContent).join('/')).join(' ')`
	if got, want := eval[string](t, ctx, rows), "2/1/0 8/0/0 3/1/2"; got != want {
		t.Errorf("the table lists %q, want %q (newest first)", got, want)
	}
	if got := text(t, ctx, "#key-usage-details summary"); got != "The hours with requests, as a table (3 hours)" {
		t.Errorf("the table's summary says %q", got)
	}

	for _, screen := range screens {
		do(t, ctx, screen.name, screen.emulate(), chromedp.Evaluate[chromedp.Void](`document.getElementById('key-usage-details').open = true`))
		checkAxe(t, ctx, screen.name+" key usage")
		if eval[bool](t, ctx, `document.documentElement.scrollWidth > window.innerWidth`) {
			t.Errorf("%s: the page is wider than the screen", screen.name)
		}
		// The chart and its scale take the card's width, whatever the
		// screen, the chart most of it.
		cardShare := func(selector string) float64 {
			return eval[float64](t, ctx, `(s => document.querySelector('`+selector+`').getBoundingClientRect().width / (s.clientWidth - parseFloat(getComputedStyle(s).paddingLeft) - parseFloat(getComputedStyle(s).paddingRight)))(document.getElementById('page-key'))`)
		}
		if share := cardShare("#key-usage-figure"); share < 0.95 || share > 1.001 {
			t.Errorf("%s: the chart and its scale are %.2f of the card's width", screen.name, share)
		}
		if share := cardShare("#key-usage-chart svg"); share < 0.8 {
			t.Errorf("%s: the chart is %.2f of the card's width", screen.name, share)
		}
		checkScale(t, ctx, screen.name, "8", "4", "0")
		// Each time under the chart on one line.
		if lines := eval[float64](t, ctx, `(a => a.getBoundingClientRect().height / parseFloat(getComputedStyle(a).lineHeight))(document.getElementById('key-usage-axis'))`); lines > 1.5 {
			t.Errorf("%s: the times under the chart take %.1f lines", screen.name, lines)
		}
		// Every outcome's colour stands out from the card (WCAG 1.4.11:
		// 3:1) and matches its legend.
		for _, class := range []string{"ok", "refused", "limited"} {
			fill := eval[string](t, ctx, `getComputedStyle(document.querySelector('#key-usage-chart rect.`+class+`')).fill`)
			card := eval[string](t, ctx, `getComputedStyle(document.getElementById('page-key')).backgroundColor`)
			if ratio := eval[float64](t, ctx, contrastJS+fmt.Sprintf(`contrast(%q, %q)`, fill, card)); ratio < 3 {
				t.Errorf("%s: %s bars (%s) are %.2f:1 against the card (%s), want 3:1", screen.name, class, fill, ratio, card)
			}
			if swatch := eval[string](t, ctx, `getComputedStyle(document.querySelector('.legend .swatch.`+class+`')).backgroundColor`); swatch != fill {
				t.Errorf("%s: the legend shows %s as %s, the bars as %s", screen.name, class, swatch, fill)
			}
		}
	}

	do(t, ctx, "the last 7 days",
		chromedp.Click(chromedp.CSS(`.usage-range[data-hours="168"]`)),
	)
	const week = "57 requests in the last 7 days: 53 ok, 2 refused, 2 rate-limited. Busiest hour: 40 requests."
	waitFor(t, ctx, "the week's figures", `document.getElementById('key-usage-summary').textContent === `+fmt.Sprintf("%q", week))
	if n := eval[int](t, ctx, `document.querySelectorAll('#key-usage-chart g.hour').length`); n != 169 && n != 168 {
		t.Errorf("%d hourly bars for 7 days", n)
	}
	if got := eval[string](t, ctx, `[...document.querySelectorAll('.usage-range')].map(b => b.getAttribute('aria-pressed')).join(',')`); got != "false,true" {
		t.Errorf("the period buttons are pressed %s, want the week's", got)
	}
	if got := bars(3); !near(got["ok"], 8.0/40) {
		t.Errorf("in the week, the bar 3 h ago is %v of the busiest, want ok %.2f", got, 8.0/40)
	}
	checkScale(t, ctx, "the week", "40", "20", "0")

	// A key without requests says so, in the period chosen, and draws nothing.
	do(t, ctx, "the idle key's page",
		chromedp.Navigate(env.URL+"/dashboard/#/keys/"+idle.ID.String()),
	)
	// Another key's figures are gone before this one's arrive.
	waitFor(t, ctx, "the idle key's figures", `document.getElementById('key-title').textContent === 'idle' && document.getElementById('key-usage-summary').textContent !== '' && !document.querySelector('.usage-range[aria-busy]')`)
	if got := text(t, ctx, "#key-usage-summary"); got != "No requests in the last 7 days." {
		t.Errorf("an unused key's week: %q", got)
	}
	do(t, ctx, "the last 24 h", chromedp.Click(chromedp.CSS(`.usage-range[data-hours="24"]`)))
	waitFor(t, ctx, "the day's figures", `!document.getElementById('key-usage-summary').textContent.includes('7 days') && !document.querySelector('.usage-range[aria-busy]')`)
	if got := text(t, ctx, "#key-usage-summary"); got != "No requests in the last 24 h." {
		t.Errorf("an unused key's day: %q", got)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#key-usage-scale span').length`); n != 0 {
		t.Errorf("a key without requests keeps %d labels of a scale", n)
	}
	if eval[bool](t, ctx, `document.getElementById('key-usage-figure').checkVisibility() || document.getElementById('key-usage-details').checkVisibility()`) {
		t.Error("a key without requests shows a chart or a table")
	}
	checkAxe(t, ctx, "an unused key's usage")
}

// checkScale checks the counts beside the chart, top to bottom, against
// the figures served: each label is on one line, its middle on its line of
// the chart (the top line, the middle one, the baseline) within a quarter
// of its own height, and it stands out from the card (WCAG 1.4.3: 4.5:1).
func checkScale(t *testing.T, ctx context.Context, screen string, want ...string) {
	t.Helper()
	if got := eval[[]string](t, ctx, `[...document.querySelectorAll('#key-usage-scale span')].map(s => s.textContent)`); !slices.Equal(got, want) {
		t.Fatalf("%s: the scale reads %q, want %q", screen, got, want)
	}
	// Where each label's middle is, as a fraction of the chart's height
	// from its top, and how tall a label is in the same unit.
	placed := eval[[][2]float64](t, ctx, `(() => {
		const chart = document.querySelector('#key-usage-chart svg').getBoundingClientRect();
		return [...document.querySelectorAll('#key-usage-scale span')].map(s => {
			const r = s.getBoundingClientRect();
			return [(r.top + r.height / 2 - chart.top) / chart.height, r.height / chart.height];
		});
	})()`)
	for i, at := range []float64{0, 0.5, 1} {
		if math.Abs(placed[i][0]-at) > placed[i][1]/4 {
			t.Errorf("%s: the label %q is centred at %.2f of the chart's height, want %.2f", screen, want[i], placed[i][0], at)
		}
	}
	if lines := eval[float64](t, ctx, `Math.max(...[...document.querySelectorAll('#key-usage-scale span')].map(s => s.getBoundingClientRect().height / parseFloat(getComputedStyle(s).lineHeight)))`); lines > 1.5 {
		t.Errorf("%s: a label of the scale takes %.1f lines", screen, lines)
	}
	colour := eval[string](t, ctx, `getComputedStyle(document.querySelector('#key-usage-scale span')).color`)
	card := eval[string](t, ctx, `getComputedStyle(document.getElementById('page-key')).backgroundColor`)
	if ratio := eval[float64](t, ctx, contrastJS+fmt.Sprintf(`contrast(%q, %q)`, colour, card)); ratio < 4.5 {
		t.Errorf("%s: the scale (%s) is %.2f:1 against the card (%s), want 4.5:1", screen, colour, ratio, card)
	}
}

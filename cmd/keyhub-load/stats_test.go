package main

import (
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		out := make([]time.Duration, len(n))
		for i, v := range n {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	cases := []struct {
		latencies []time.Duration
		q         float64
		want      time.Duration
	}{
		{nil, 0.5, 0},
		{ms(7), 0.99, 7 * time.Millisecond},
		{ms(4, 1, 3, 2), 0.5, 2 * time.Millisecond}, // unsorted input
		{ms(1, 2, 3, 4), 1, 4 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.9, 9 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.91, 10 * time.Millisecond},
	}
	for _, c := range cases {
		if got := percentile(c.latencies, c.q); got != c.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", c.latencies, c.q, got, c.want)
		}
	}
	// 99th of 1..1000 ms is 990 ms, not the maximum.
	many := make([]time.Duration, 1000)
	for i := range many {
		many[999-i] = time.Duration(i+1) * time.Millisecond
	}
	if got := percentile(many, 0.99); got != 990*time.Millisecond {
		t.Errorf("p99 of 1..1000 ms = %v", got)
	}
}

func TestMedianRatio(t *testing.T) {
	cases := []struct {
		rates, base []float64
		want        float64
	}{
		{nil, nil, 0},
		{[]float64{50}, []float64{100}, 0.5},
		{[]float64{90, 10, 80}, []float64{100, 100, 100}, 0.8},          // an outlier round does not move it
		{[]float64{90, 80, 30, 40}, []float64{100, 100, 100, 100}, 0.6}, // even: mean of the middle two
		{[]float64{10, 20}, []float64{0, 40}, 0.5},                      // a round without a base is skipped
	}
	for _, c := range cases {
		if got := medianRatio(c.rates, c.base); got < c.want-1e-9 || got > c.want+1e-9 {
			t.Errorf("medianRatio(%v, %v) = %v, want %v", c.rates, c.base, got, c.want)
		}
	}
}

func TestWriteTableAligns(t *testing.T) {
	var b strings.Builder
	writeTable(&b, []row{{measure: "GET /healthz", rate: "35.0k", p50: "0.80 ms", p99: "2.10 ms", ratio: "1.00", cpu: "20 µs"}, {measure: "µ", goal: "≥ 0.9 (met)"}})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("want header, rule and 2 rows:\n%s", b.String())
	}
	width := len([]rune(lines[0]))
	for _, l := range lines {
		if len([]rune(l)) != width || !strings.HasPrefix(l, "| ") || !strings.HasSuffix(l, " |") {
			t.Fatalf("misaligned table:\n%s", b.String())
		}
	}
	if !strings.Contains(lines[2], "| GET /healthz | 35.0k |") {
		t.Fatalf("row: %q", lines[2])
	}
}

func TestWriteLimitsNamesOnlyMissedGoals(t *testing.T) {
	var b strings.Builder
	writeLimits(&b, []row{
		{measure: "met", goal: verdict("≥ 0.9", true), limit: "never printed"},
		{measure: "missed", goal: verdict("≥ 0.9", false), limit: "the headers"},
		{measure: "missed first", goal: verdict("≥ 1.0", false) + "; p50 +1 ms", limit: "the hop"},
		{measure: "no goal"},
	})
	out := b.String()
	for _, want := range []string{"- missed: the headers\n", "- missed first: the hop\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "never printed") || strings.Contains(out, "no goal") {
		t.Errorf("a met goal or a row without one was listed:\n%s", out)
	}
	b.Reset()
	writeLimits(&b, []row{{measure: "met", goal: verdict("≥ 0.9", true)}})
	if b.Len() != 0 {
		t.Errorf("all goals met, yet: %q", b.String())
	}
}

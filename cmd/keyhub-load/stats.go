package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// sample is what one load phase measured.
type sample struct {
	requests  int
	errors    int
	elapsed   time.Duration
	latencies []time.Duration // one per request, unsorted
}

// rate is the completed requests per second.
func (s sample) rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.requests) / s.elapsed.Seconds()
}

// add records one answer.
func (s *sample) add(status int, latency time.Duration) {
	s.requests++
	if status != 200 {
		s.errors++
	}
	s.latencies = append(s.latencies, latency)
}

// merge adds other's requests to s (workers measure separately).
func (s *sample) merge(other sample) {
	s.requests += other.requests
	s.errors += other.errors
	s.latencies = append(s.latencies, other.latencies...)
}

// percentile returns the q-quantile (0 < q <= 1) of latencies by the
// nearest-rank method: the smallest value with at least q of the samples at
// or below it. It sorts latencies in place.
func percentile(latencies []time.Duration, q float64) time.Duration {
	if len(latencies) == 0 {
		return 0
	}
	slices.Sort(latencies)
	rank := int(q*float64(len(latencies))+0.999999999) - 1
	return latencies[max(0, min(rank, len(latencies)-1))]
}

// medianRatio is the median over rounds of rates[i] / base[i].
func medianRatio(rates, base []float64) float64 {
	ratios := make([]float64, 0, len(rates))
	for i := range min(len(rates), len(base)) {
		if base[i] > 0 {
			ratios = append(ratios, rates[i]/base[i])
		}
	}
	if len(ratios) == 0 {
		return 0
	}
	slices.Sort(ratios)
	n := len(ratios)
	if n%2 == 1 {
		return ratios[n/2]
	}
	return (ratios[n/2-1] + ratios[n/2]) / 2
}

// row is one line of the report.
type row struct {
	measure string
	rate    string // requests (or transactions) per second
	p50     string
	p99     string
	ratio   string
	cpu     string // keyhub's CPU time per request
	goal    string // the goal and whether it is met
	limit   string // what limits the figure, printed when its goal is not met
}

func (r *row) setLatencies(latencies []time.Duration) {
	r.p50 = formatLatency(percentile(latencies, 0.50))
	r.p99 = formatLatency(percentile(latencies, 0.99))
}

// formatLatency prints milliseconds with 2 decimals (µs resolution is noise
// on a shared machine).
func formatLatency(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// formatRate prints a rate in thousands above 10k, as wrk does.
func formatRate(perSecond float64) string {
	if perSecond >= 10_000 {
		return fmt.Sprintf("%.1fk", perSecond/1000)
	}
	return fmt.Sprintf("%.0f", perSecond)
}

// verdict says whether a measured value meets its goal.
func verdict(goal string, met bool) string {
	if met {
		return goal + " (met)"
	}
	return goal + " (NOT met)"
}

// writeTable prints rows as one Markdown table.
func writeTable(w io.Writer, rows []row) {
	cells := make([][]string, len(rows))
	for i, r := range rows {
		cells[i] = []string{r.measure, r.rate, r.p50, r.p99, r.ratio, r.cpu, r.goal}
	}
	writeMarkdown(w, []string{"measure", "req/s", "p50", "p99", "ratio", "server CPU/req", "goal"}, cells)
}

// writeLimits says, under the table, what limits each figure whose goal is
// not met (BENCHMARKS.md has the profiles behind each sentence), so a
// reader of the output alone knows a known limit from a regression.
func writeLimits(w io.Writer, rows []row) {
	var missed []row
	for _, r := range rows {
		if strings.Contains(r.goal, "(NOT met)") {
			missed = append(missed, r)
		}
	}
	if len(missed) == 0 {
		return
	}
	fmt.Fprintln(w, "\nGoals not met, and what limits them (measured in BENCHMARKS.md):")
	for _, r := range missed {
		limit := r.limit
		if limit == "" {
			limit = "not analysed: see BENCHMARKS.md"
		}
		fmt.Fprintf(w, "- %s: %s\n", r.measure, limit)
	}
}

// writeMarkdown prints a Markdown table with its columns aligned.
func writeMarkdown(w io.Writer, header []string, rows [][]string) {
	widths := make([]int, len(header))
	for _, r := range append([][]string{header}, rows...) {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	line := func(cs []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range cs {
			fmt.Fprintf(&b, " %s%s |", c, strings.Repeat(" ", widths[i]-len([]rune(c))))
		}
		fmt.Fprintln(w, b.String())
	}
	line(header)
	dashes := make([]string, len(widths))
	for i, n := range widths {
		dashes[i] = strings.Repeat("-", n)
	}
	line(dashes)
	for _, r := range rows {
		line(r)
	}
}

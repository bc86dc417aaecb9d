package dashboard_test

import (
	"io/fs"
	"regexp"
	"slices"
	"testing"

	"github.com/keyhub/keyhub/internal/dashboard"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// The events page's type filter offers every event type the API lists
// (GET /v1/events?type=), and nothing else: a new type that the filter
// does not know could not be picked out of the audit trail.
func TestEventsFilterOffersEveryEventType(t *testing.T) {
	t.Parallel()
	page, err := fs.ReadFile(dashboard.Files, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	sel := regexp.MustCompile(`(?s)<select id="events-type">(.*?)</select>`).FindSubmatch(page)
	if sel == nil {
		t.Fatal("index.html has no events-type select")
	}
	var offered []string
	for _, m := range regexp.MustCompile(`<option value="([^"]*)">`).FindAllSubmatch(sel[1], -1) {
		if v := string(m[1]); v != "" { // "all types"
			offered = append(offered, v)
		}
	}
	var want []string
	for _, t := range keyhub.EventTypes {
		want = append(want, string(t))
	}
	slices.Sort(offered)
	slices.Sort(want)
	if !slices.Equal(offered, want) {
		t.Fatalf("the events filter offers %v, want %v", offered, want)
	}
}

package main

import (
	"context"
	"strconv"

	"github.com/keyhub/keyhub/api"
)

const keysUsageHelp = `usage: mk keys usage ID [--from WHEN] [--to WHEN] [--all] [--json]

Prints the key's requests per hour (GET /v1/keys/{id}/usage): admitted
(OK), refused by a rule such as a missing scope (REFUSED) and refused by a
rate limit (LIMITED), then the totals. Hours without requests are left
out unless --all. Counts reach the server's database in batches, every
few seconds. Needs the keys:read scope.

  --from, --to  an RFC 3339 time, or a duration back from now (90m, 24h);
                default: the last 24 hours; at most 31 days
`

func (m *cli) keysUsage(ctx context.Context, args []string) error {
	fs := m.flags("mk keys usage", keysUsageHelp)
	from := fs.String("from", "", "first hour")
	to := fs.String("to", "", "end")
	all := fs.Bool("all", false, "print hours without requests too")
	id, c, err := m.keyCommand(fs, args)
	if err != nil {
		return err
	}
	start, err := parseWhen("--from", *from)
	if err != nil {
		return err
	}
	end, err := parseWhen("--to", *to)
	if err != nil {
		return err
	}
	return call(ctx, m, func(ctx context.Context) (api.KeyUsage, error) { return c.KeyUsage(ctx, id, start, end) }, func(u api.KeyUsage) {
		rows := make([][]string, 0, len(u.Hours)+1)
		for _, h := range u.Hours {
			if *all || h.UsageCounts != (api.UsageCounts{}) {
				rows = append(rows, usageRow(h.Hour.UTC().Format("2006-01-02T15:04Z"), h.UsageCounts))
			}
		}
		rows = append(rows, usageRow("total", u.Totals))
		m.table([]string{"HOUR", "OK", "REFUSED", "LIMITED"}, rows)
	})
}

func usageRow(label string, c api.UsageCounts) []string {
	return []string{label, strconv.FormatInt(c.OK, 10), strconv.FormatInt(c.Refused, 10), strconv.FormatInt(c.RateLimited, 10)}
}

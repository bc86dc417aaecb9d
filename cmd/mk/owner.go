package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keyhub/keyhub/api"
)

const ownerHelp = `usage: mk owner policy [show|set] ...

The account's rules for its keys (GET and PATCH /v1/owner/policy). They
belong to the account, not to a key: a signed-in user only
($KEYHUB_TOKEN, e.g. from keyhub dev token); an API key is refused.

  mk owner policy [show] [--json]     print the policy
  mk owner policy set [--max-key-lifetime DURATION|none] [--leak-policy revoke|notify] [--json]
                                      change what is given

Run mk owner policy set --help for its flags.
`

const ownerPolicySetHelp = `usage: mk owner policy set [--max-key-lifetime DURATION|none] [--leak-policy revoke|notify] [--json]

Changes the account's key policy (PATCH /v1/owner/policy); only the flags
given change.

  --max-key-lifetime  the longest a key created or refreshed from now on
                      may live (720h, 90d, 1w); a create without an
                      expiry gets this one. "none" removes the bound.
                      Existing keys keep their expiry.
  --leak-policy       what a report that a key leaked (GitHub secret
                      scanning) does: revoke it (the default), or only
                      notify (a leaked event, the key keeps working)
`

func (m *cli) owner(ctx context.Context, args []string) error {
	return m.subcommand(ctx, "owner", ownerHelp, args, map[string]func(context.Context, []string) error{
		"policy": m.ownerPolicy,
	})
}

// ownerPolicy is `mk owner policy`: show (also without a verb) or set.
func (m *cli) ownerPolicy(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "set":
			return m.ownerPolicySet(ctx, args[1:])
		case "show":
			args = args[1:]
		}
	}
	fs := m.flags("mk owner policy", ownerHelp)
	if _, err := m.parse(fs, args); err != nil {
		return err
	}
	c, err := m.client()
	if err != nil {
		return err
	}
	return call(ctx, m, c.OwnerPolicy, m.printPolicy)
}

func (m *cli) ownerPolicySet(ctx context.Context, args []string) error {
	fs := m.flags("mk owner policy set", ownerPolicySetHelp)
	var req api.OwnerPolicyUpdate
	fs.Func("max-key-lifetime", "the longest lifetime (720h, 90d), or none", func(v string) error {
		if v == "none" {
			req.MaxKeyLifetime = api.Null[int64]()
			return nil
		}
		d, err := parseLifetime(v)
		if err != nil {
			return err
		}
		req.MaxKeyLifetime = api.Some(int64(d / time.Second))
		return nil
	})
	fs.Func("leak-policy", "revoke or notify", func(v string) error {
		req.LeakPolicy = api.Some(v) // the server says which values it accepts
		return nil
	})
	if _, err := m.parse(fs, args); err != nil {
		return err
	}
	if !req.MaxKeyLifetime.Set && !req.LeakPolicy.Set {
		return usageErrorf("mk owner policy set needs --max-key-lifetime or --leak-policy")
	}
	c, err := m.client()
	if err != nil {
		return err
	}
	return call(ctx, m, func(ctx context.Context) (api.OwnerPolicy, error) { return c.UpdateOwnerPolicy(ctx, req) }, m.printPolicy)
}

func (m *cli) printPolicy(p api.OwnerPolicy) {
	lifetime := "none (keys may live forever)"
	if p.MaxKeyLifetime != nil {
		lifetime = fmt.Sprintf("%s (%d s)", formatLifetime(time.Duration(*p.MaxKeyLifetime)*time.Second), *p.MaxKeyLifetime)
	}
	m.fields("max key lifetime", lifetime, "leak policy", p.LeakPolicy)
}

// parseLifetime reads a Go duration (720h, 90m), or whole days or weeks
// (90d, 2w), which a lifetime is usually counted in.
func parseLifetime(v string) (time.Duration, error) {
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(v, suffix); ok {
			count, err := strconv.ParseInt(n, 10, 32)
			if err != nil || count <= 0 {
				return 0, fmt.Errorf("%q is not a number of %s", v, map[string]string{"d": "days", "w": "weeks"}[suffix])
			}
			return time.Duration(count) * unit, nil
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a duration (720h, 90d, 2w) or none", v)
	}
	return d, nil
}

// formatLifetime prints whole days as days (30d), else as a Go duration.
func formatLifetime(d time.Duration) string {
	if day := 24 * time.Hour; d >= day && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	return d.String()
}

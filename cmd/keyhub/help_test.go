package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// Every level answers --help on stdout with status 0, without needing a
// database (serve --help used to say "DATABASE_URL is required", dev token
// -h exited 1 with "flag: help requested").
func TestHelpAtEveryLevel(t *testing.T) {
	noEnv := func(string) string { return "" }
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"usage: keyhub <command>", "serve --help"}},
		{[]string{"help"}, []string{"usage: keyhub <command>"}},
		{[]string{"serve", "--help"}, []string{"usage: keyhub serve", "DATABASE_URL (required)", "CHANGE_FEED_STALE_BOUND, default: 5s", "WS_TICKET_SECRET"}},
		{[]string{"serve", "-h"}, []string{"usage: keyhub serve"}},
		{[]string{"migrate", "--help"}, []string{"usage: keyhub migrate up|down|status", "DATABASE_URL"}},
		{[]string{"dev", "token", "--help"}, []string{"usage: keyhub dev token", "-email"}},
		{[]string{"dev", "token", "-h"}, []string{"usage: keyhub dev token"}},
		{[]string{"dev", "--help"}, []string{"usage: keyhub dev token"}},
		{[]string{"--version"}, []string{"keyhub "}},
	} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), tc.args, noEnv, &stdout, &stderr); err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		for _, want := range tc.want {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("%v: stdout lacks %q:\n%s", tc.args, want, stdout.String())
			}
		}
	}
}

// Command lines keyhub does not understand are usage errors (exit status 2).
func TestUsageErrors(t *testing.T) {
	noEnv := func(string) string { return "" }
	for _, args := range [][]string{{}, {"frobnicate"}, {"migrate"}, {"migrate", "sideways"}, {"dev"}, {"dev", "token", "--nope"}, {"dev", "token", "extra"}, {"serve", "extra"}} {
		var out bytes.Buffer
		err := run(context.Background(), args, noEnv, &out, &out)
		var usage usageError
		if !errors.As(err, &usage) {
			t.Errorf("%v: want a usage error, got %v", args, err)
		}
	}
}

// serve --help is the binary's, which also runs where make run does not
// exist (the container): no note about make run, and no default with a
// note of its own inside another pair of parentheses.
func TestServeHelpSpeaksOfTheBinary(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"serve", "--help"}, func(string) string { return "" }, &out, &out); err != nil {
		t.Fatal(err)
	}
	help := out.String()
	if strings.Contains(help, "make run") {
		t.Errorf("serve --help mentions make run:\n%s", help)
	}
	for _, line := range strings.Split(help, "\n") {
		depth := 0
		for _, r := range line {
			switch r {
			case '(':
				depth++
				if depth > 1 {
					t.Errorf("nested parentheses: %q", line)
				}
			case ')':
				depth--
			}
		}
	}
	for _, want := range []string{"LISTEN_ADDR, default: :8080\n", "KEYHUB_DEV, default: false\n      dev mode: keyhub is its own JWT issuer\n"} {
		if !strings.Contains(help, want) {
			t.Errorf("serve --help lacks %q:\n%s", want, help)
		}
	}
}

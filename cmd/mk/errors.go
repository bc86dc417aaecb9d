package main

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/keyhub/keyhub/api/client"
)

// usageError is a command line mk cannot run: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// authError is a missing credential, found before asking the server: exit code 3.
type authError struct{ msg string }

func (e authError) Error() string { return e.msg }

// exitCode maps an error to mk's documented exit codes.
func exitCode(err error) int {
	var usage usageError
	var auth authError
	var apiErr *client.Error
	var closed *client.CloseError
	switch {
	case errors.As(err, &usage):
		return exitUsage
	case errors.As(err, &auth):
		return exitAuth
	case errors.As(err, &apiErr):
		switch {
		case apiErr.Status == http.StatusUnauthorized || apiErr.Status == http.StatusForbidden:
			return exitAuth
		case apiErr.Status == http.StatusNotFound:
			return exitNotFound
		case apiErr.Status == http.StatusTooManyRequests:
			return exitRateLimited
		}
	case errors.As(err, &closed):
		switch {
		case closed.Code == client.CloseKeyRevoked:
			return exitAuth
		case closed.Code == 1008 && authCloseReasons[closed.Reason]:
			return exitAuth // first-message authentication refused
		}
	}
	return exitError
}

// authCloseReasons are the close reasons (error codes) of a 1008 that
// refuses the first message's credentials.
var authCloseReasons = map[string]bool{
	"INVALID_API_KEY": true, "UNKNOWN_API_KEY": true, "KEY_REVOKED": true, "KEY_EXPIRED": true,
	"INVALID_TOKEN": true, "EXPIRED_TOKEN": true, "NOT_A_USER_SESSION": true, "INSUFFICIENT_SCOPE": true,
}

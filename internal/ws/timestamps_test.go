package ws_test

import (
	"net/http"
	"regexp"
	"testing"
)

// rfc3339Micro is the one timestamp format of the API: RFC 3339 in UTC, at
// most microseconds (the WebSocket welcome used to send nanoseconds).
var rfc3339Micro = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$`)

func TestTimestampsShareOneFormat(t *testing.T) {
	t.Parallel()
	env, jwt, key := setup(t, nil)
	connectKey(t, env, key)
	c2 := mustDial(t, env, "/v1/ws", bearer(jwt))
	welcome := readWelcome(t, c2)

	var me, got map[string]any
	env.Get(t, "/v1/me", jwt).Want(t, http.StatusOK, "").JSON(t, &me)
	env.Get(t, "/v1/keys/"+key.ID.String(), jwt).Want(t, http.StatusOK, "").JSON(t, &got)
	var conns struct {
		Data []map[string]any `json:"data"`
	}
	env.Get(t, "/v1/ws/connections", jwt).Want(t, http.StatusOK, "").JSON(t, &conns)
	stamps := map[string]any{
		"welcome expires_at":   welcome["expires_at"],
		"/v1/me expires_at":    me["expires_at"],
		"key created_at":       got["created_at"],
		"connection connected": conns.Data[0]["connected_at"],
		"connection activity":  conns.Data[0]["last_activity_at"],
	}
	for name, v := range stamps {
		s, _ := v.(string)
		if !rfc3339Micro.MatchString(s) {
			t.Errorf("%s = %v, not RFC 3339 UTC with at most microseconds", name, v)
		}
	}
}

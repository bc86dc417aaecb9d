package origin

import "testing"

func TestAllowed(t *testing.T) {
	t.Parallel()
	patterns := []string{"https://app.example.com", "https://*.tenant.example", "localhost:5173"}
	for _, tc := range []struct {
		origin string
		want   bool
	}{
		{"https://app.example.com", true},
		{"HTTPS://APP.EXAMPLE.COM", true},
		{"http://app.example.com", false}, // scheme is part of the pattern
		{"https://app.example.com:8443", false},
		{"https://a.tenant.example", true},
		{"https://tenant.example", false},
		{"http://localhost:5173", true}, // host-only pattern: any scheme
		{"http://localhost:5174", false},
		{"null", false},
		{"", false},
		{"https://evil.example/app.example.com", false},
	} {
		if got := Allowed(tc.origin, patterns); got != tc.want {
			t.Errorf("Allowed(%q) = %v, want %v", tc.origin, got, tc.want)
		}
	}
}

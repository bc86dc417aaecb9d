package httpjson_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/httpjson"
)

// AppendString writes what encoding/json writes for every string: HTML
// characters, control characters, U+2028/2029 and invalid UTF-8 included.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `q"uote\back`, "<script>&amp;</script>", "\x00\x01\b\f\n\r\t\x1f\x7f",
		"caf\xc3\xa9 \xe2\x80\xa8 \xe2\x80\xa9 \xff\xfe", "\xe2\x80", "日本語 ✓", "mk_AbCdEf0123456789"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := httpjson.AppendString([]byte("prefix"), s); string(got) != "prefix"+string(want) {
			t.Fatalf("AppendString(%q) = %s, encoding/json %s", s, got[len("prefix"):], want)
		}
	})
}

func TestAppendValuesAsEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, id := range []uuid.UUID{{}, uuid.MustParse("0640108c-af4f-4e7d-ba35-7b58330bfee8"), {0xff, 0xfe, 0xa0, 0x0a, 0x10, 0x01, 0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4, 5}} {
		want, _ := json.Marshal(id)
		if got := httpjson.AppendUUID(nil, id); string(got) != string(want) {
			t.Errorf("AppendUUID = %s, want %s", got, want)
		}
	}
	for _, list := range [][]string{nil, {}, {"keys:read"}, {"a", "<b>", ""}} {
		want, _ := json.Marshal(list)
		if got := httpjson.AppendStrings(nil, list); string(got) != string(want) {
			t.Errorf("AppendStrings(%#v) = %s, want %s", list, got, want)
		}
	}
	for _, n := range []int64{0, -1, 42, 1 << 62, -1 << 63} {
		want, _ := json.Marshal(n)
		if got := httpjson.AppendInt(nil, n); string(got) != string(want) {
			t.Errorf("AppendInt = %s, want %s", got, want)
		}
	}
	for _, v := range []bool{true, false} {
		want, _ := json.Marshal(v)
		if got := httpjson.AppendBool(nil, v); string(got) != string(want) {
			t.Errorf("AppendBool = %s, want %s", got, want)
		}
	}
	east := time.FixedZone("", 5*3600+30*60)
	for _, at := range []time.Time{
		time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 6, 21, 0, 0, 123456789, east),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), // outside RFC 3339: an error
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		want, wantErr := json.Marshal(at)
		got, err := httpjson.AppendTime(nil, at)
		if (err != nil) != (wantErr != nil) || (err == nil && string(got) != string(want)) {
			t.Errorf("AppendTime(%v) = %s, %v; encoding/json %s, %v", at, got, err, want, wantErr)
		}
	}
}

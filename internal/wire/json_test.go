package wire_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/wire"
)

// Each self-encoding answer writes the bytes encoding/json writes for its
// api type: with every field empty, and with every field set (by
// reflection, so a field added to the api type and not to AppendJSON fails
// here), through httpjson.Write as a client receives it.
func TestAnswersEncodeAsEncodingJSON(t *testing.T) {
	t.Parallel()
	var me api.Me
	var verification api.KeyVerification
	for _, tc := range []struct {
		name   string
		api    any                      // a pointer to the api value, filled in place
		answer func() httpjson.Appender // the same value as its answer type
	}{
		{"me", &me, func() httpjson.Appender { m := wire.MeJSON(me); return &m }},
		{"verification", &verification, func() httpjson.Appender { v := wire.KeyVerificationJSON(verification); return &v }},
	} {
		for variant := range 3 { // 0: every field empty
			value := reflect.ValueOf(tc.api).Elem()
			value.SetZero()
			if variant > 0 {
				fill(value, variant)
			}
			want, err := json.Marshal(tc.api)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tc.answer().AppendJSON(nil)
			if err != nil || string(got) != string(want) {
				t.Errorf("%s, variant %d:\n got %s, %v\nwant %s", tc.name, variant, got, err, want)
			}
			rec := httptest.NewRecorder()
			httpjson.Write(rec, http.StatusOK, tc.answer())
			if body := rec.Body.String(); body != string(want)+"\n" || rec.Header().Get("Content-Length") != strconv.Itoa(len(body)) {
				t.Errorf("%s, variant %d: Write sent %q (Content-Length %s), want %s and a newline", tc.name, variant, body, rec.Header().Get("Content-Length"), want)
			}
		}
	}
}

// fill sets every field of v (recursively) to a value that is not its
// zero, varied by variant; strings hold what encoding/json escapes.
func fill(v reflect.Value, variant int) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 12, variant, 21, 7, 0, variant*1001, time.FixedZone("", variant*3600))))
			return
		}
		for i := range v.NumField() {
			fill(v.Field(i), variant+i)
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), variant)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), variant, variant))
		for i := range variant {
			fill(v.Index(i), variant+i)
		}
	case reflect.Array:
		for i := range v.Len() {
			fill(v.Index(i), variant*31+i*17)
		}
	case reflect.String:
		v.SetString([]string{"plain", "<a href=\"x\">&</a>", "caf\xc3\xa9\u2028\n\xff", "mk_AbC"}[variant%4])
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(int64(variant*1_000_003 - 7))
	case reflect.Uint8:
		v.SetUint(uint64(variant % 256))
	default:
		panic("fill: no case for " + v.Kind().String())
	}
}

package ws

import (
	"testing"
	"unsafe"
)

// Every open socket holds one conn and one lease entry, so a few bytes
// more in either, once they cross the allocator's next size class, cost
// ≈64 B a socket: at 10,000 idle sockets that is the margin of issue 10's
// goal (≤ 16 KiB of server RSS per idle authenticated connection; see
// BENCHMARKS.md, "Idle sockets: noise or growth"). When a new field must
// go in, make room (a cold field behind a pointer, two small ones in one
// word) or measure with `keyhub-load -only sockets` and raise the bound
// here with the figures in BENCHMARKS.md.
func TestConnFitsItsSizeClass(t *testing.T) {
	for _, tc := range []struct {
		name  string
		size  uintptr
		limit uintptr // what fits a size class of the Go allocator
	}{
		// 576 less the 8-byte header the allocator puts before every
		// object over 512 bytes that holds pointers.
		{"conn", unsafe.Sizeof(conn{}), 576 - 8},
		{"lease", unsafe.Sizeof(lease{}), 72},
	} {
		if tc.size > tc.limit {
			t.Errorf("%s is %d bytes, over the %d-byte size class it was held to (one allocation, or one map slot, per open socket)", tc.name, tc.size, tc.limit)
		}
	}
}

package audit

import (
	"testing"
	"unsafe"
)

// TestParseIPSharesCanonicalText checks that a canonical address comes back
// as the very string it was parsed from (no copy), and that any other form
// comes back canonical.
func TestParseIPSharesCanonicalText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"203.0.113.7", "203.0.113.7"},
		{"2001:db8::1", "2001:db8::1"},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"::ffff:255.255.255.255", "::ffff:255.255.255.255"},
		{"2001:DB8::1", "2001:db8::1"},
		{"2001:db8:0:0:0:0:0:1", "2001:db8::1"},
	} {
		got, ok := parseIP(tc.in)
		if !ok || got != tc.want {
			t.Errorf("parseIP(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
			continue
		}
		if shared := unsafe.StringData(got) == unsafe.StringData(tc.in); shared != (tc.in == tc.want) {
			t.Errorf("parseIP(%q): result shares the input's memory: %v, want %v", tc.in, shared, tc.in == tc.want)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { _, _ = parseIP("203.0.113.7") }); allocs != 0 {
		t.Errorf("parseIP of a canonical address allocates %.0f times, want 0", allocs)
	}
}

package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// limiterFor returns a limiter remembering size clients, each allowed burst requests and then
// (practically) nothing: a token every 1000 s, so no bucket refills while a test runs.
func limiterFor(size, burst int) (*rateLimiter, func(remoteAddr string) *httptest.ResponseRecorder) {
	l := newRateLimiter(0.001, burst)
	l.size = size
	h := l.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	return l, func(remoteAddr string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/oauth/v2/token", nil)
		r.RemoteAddr = remoteAddr
		h.ServeHTTP(w, r)
		return w
	}
}

// TestRateLimitSurvivesAddressChurn: a client over its limit stays limited while many more new
// addresses than the table holds arrive, as long as it keeps sending (clearing the table when it
// filled reset everyone's bucket).
func TestRateLimitSurvivesAddressChurn(t *testing.T) {
	const size = 8
	l, do := limiterFor(size, 1)
	const victim = "198.51.100.7:5000"
	if w := do(victim); w.Code != http.StatusOK {
		t.Fatalf("first request: %d", w.Code)
	}
	for i := range 5 * size {
		if w := do(fmt.Sprintf("203.0.113.%d:1000", i)); w.Code != http.StatusOK {
			t.Fatalf("new address %d: %d, want its own fresh bucket", i, w.Code)
		}
		if w := do(victim); w.Code != http.StatusTooManyRequests {
			t.Fatalf("after %d other addresses the limited client got %d, want 429", i+1, w.Code)
		}
	}
	if n := len(l.byKey); n != size || l.order.Len() != size {
		t.Fatalf("table holds %d (list %d) clients, want its size %d", n, l.order.Len(), size)
	}
}

// TestRateLimitEvictsLeastRecentlyUsed: when the table is full, the client seen least recently
// is the one forgotten; the others keep their (spent) buckets.
func TestRateLimitEvictsLeastRecentlyUsed(t *testing.T) {
	_, do := limiterFor(2, 1)
	const a, b, c = "192.0.2.1:1", "192.0.2.2:1", "192.0.2.3:1"
	do(a)
	do(b)
	if do(a).Code != http.StatusTooManyRequests { // a is now the most recently seen
		t.Fatal("a's second request must be limited")
	}
	do(c) // table full: b, the least recently seen, goes
	if got := do(a).Code; got != http.StatusTooManyRequests {
		t.Fatalf("a was evicted (got %d); b was the least recently used", got)
	}
	if got := do(c).Code; got != http.StatusTooManyRequests {
		t.Fatalf("c was evicted (got %d); b was the least recently used", got)
	}
	if got := do(b).Code; got != http.StatusOK {
		t.Fatalf("b got %d: it should have been forgotten and start with a fresh bucket", got)
	}
}

// TestRateLimitKeys: IPv6 clients share a bucket per /64, IPv4 clients have one per address, and
// an IPv4-mapped IPv6 address is the IPv4 client.
func TestRateLimitKeys(t *testing.T) {
	cases := []struct {
		name        string
		first, then string
		shared      bool
	}{
		{"same IPv6 /64", "[2001:db8:1:2::1]:443", "[2001:db8:1:2:ffff:ffff:ffff:ffff]:443", true},
		{"same IPv6 /64 with a zone", "[fe80::1%eth0]:443", "[fe80::2]:443", true},
		{"neighbouring IPv6 /64s", "[2001:db8:1:2::1]:443", "[2001:db8:1:3::1]:443", false},
		{"IPv6 differing in the first half", "[2001:db8::1]:443", "[2001:db9::1]:443", false},
		{"same IPv4, other port", "192.0.2.1:1000", "192.0.2.1:2000", true},
		{"neighbouring IPv4", "192.0.2.1:1000", "192.0.2.2:1000", false},
		{"IPv4-mapped IPv6 is IPv4", "[::ffff:192.0.2.1]:1000", "192.0.2.1:1000", true},
		{"IPv4-mapped IPv6 keeps per-address IPv4", "[::ffff:192.0.2.1]:1000", "[::ffff:192.0.2.2]:1000", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, do := limiterFor(100, 1)
			if got := do(c.first).Code; got != http.StatusOK {
				t.Fatalf("first request: %d", got)
			}
			want := http.StatusOK
			if c.shared {
				want = http.StatusTooManyRequests
			}
			if got := do(c.then).Code; got != want {
				t.Fatalf("%s after %s: %d, want %d (shared bucket: %v)", c.then, c.first, got, want, c.shared)
			}
		})
	}
}

// TestRateLimitAnswer: the 429 names the address the request came from (not its /64), with
// Retry-After: 1 and the usual JSON error headers.
func TestRateLimitAnswer(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.1:1234":    `{"error":"slow_down","error_description":"too many requests from 192.0.2.1; slow down and retry after the Retry-After delay"}`,
		"[2001:db8::1]:443": `{"error":"slow_down","error_description":"too many requests from 2001:db8::1; slow down and retry after the Retry-After delay"}`,
	} {
		_, do := limiterFor(10, 1)
		do(addr)
		w := do(addr)
		h := w.Header()
		if w.Code != http.StatusTooManyRequests || w.Body.String() != want {
			t.Errorf("%s: %d %s\nwant 429 %s", addr, w.Code, w.Body, want)
		}
		if h.Get("Retry-After") != "1" || h.Get("Content-Type") != "application/json" || h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: headers %v", addr, h)
		}
	}
}

// TestRateLimitOddRemoteAddr: a RemoteAddr that is not host:port (a Unix socket's "@", an empty
// or bare value) is limited as its own client, without a panic.
func TestRateLimitOddRemoteAddr(t *testing.T) {
	for _, addr := range []string{"", "@", "pipe", ":", ":80", "[]:80", "[::1]", "::1", "192.0.2.1", "[192.0.2.1]:80", "[::1%]:80", "[%eth0]:1", "[fe80::1%]:1", "1.2.3.4.5:6", "[2001:db8::1]:x:y"} {
		_, do := limiterFor(100, 1)
		if got := do(addr).Code; got != http.StatusOK {
			t.Errorf("%q: first request %d", addr, got)
		}
		if got := do(addr).Code; got != http.StatusTooManyRequests {
			t.Errorf("%q: second request %d, want 429", addr, got)
		}
	}
}

// FuzzClientOf: any RemoteAddr gives a key without a panic, and two IPv6 addresses of one /64
// always give the same key.
func FuzzClientOf(f *testing.F) {
	for _, s := range []string{"192.0.2.1:80", "[2001:db8::1]:443", "[::ffff:1.2.3.4]:1", "@", "", "[fe80::1%eth0]:1"} {
		f.Add(s, uint64(0))
	}
	f.Fuzz(func(t *testing.T, addr string, low uint64) {
		_, k := clientOf(addr)
		if !k.ip.IsValid() || !k.ip.Is6() {
			return
		}
		b := k.ip.As16()
		for i := range 8 {
			b[8+i] = byte(low >> (8 * i))
		}
		ip := netip.AddrFrom16(b)
		if ip.Is4In6() {
			return // ::ffff:0:0/96 lies inside ::/64 and is IPv4
		}
		other := "[" + ip.String() + "]:1"
		if _, k2 := clientOf(other); k2 != k {
			t.Fatalf("%q and %q share a /64 but got keys %v and %v", addr, other, k, k2)
		}
	})
}

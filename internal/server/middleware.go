package server

import (
	"container/list"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/signet-id/signet/internal/oauth"
)

// statusWriter remembers the status code for metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// instrument records request count and latency for a named route.
func (s *Server) instrument(route string, h http.Handler) http.Handler {
	m := s.Metrics.Route(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		m.Observe(sw.code, time.Since(start))
	})
}

// recoverer turns a panic into a logged server_error instead of a dropped connection.
func (s *Server) recoverer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.Log.Error("panic serving request", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				oauth.WriteError(w, oauth.ServerError(nil))
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// rateLimiter limits requests per client with a token bucket each (0 disables it). A client is an
// IPv4 address or an IPv6 /64: a subscriber is given a whole /64, so per-address buckets would
// hand an attacker 2^64 of them. The table is bounded; when it is full the client seen least
// recently is forgotten, so churning addresses cannot reset the bucket of a client that is still
// sending.
type rateLimiter struct {
	limit rate.Limit
	burst int
	size  int // most clients remembered

	mu    sync.Mutex
	byKey map[clientKey]*list.Element // of *bucket
	order *list.List                  // most recently seen first
}

// clientKey names a bucket: a normalised address, or the raw RemoteAddr when it is not an IP
// (a Unix socket's "@", an empty value).
type clientKey struct {
	ip  netip.Addr
	raw string
}

type bucket struct {
	key clientKey
	lim *rate.Limiter
}

// rateTableSize bounds the limiter's memory: about 250 bytes a client, 25 MB when full.
const rateTableSize = 100_000

func newRateLimiter(perSecond float64, burst int) *rateLimiter {
	return &rateLimiter{limit: rate.Limit(perSecond), burst: burst, size: rateTableSize,
		byKey: map[clientKey]*list.Element{}, order: list.New()}
}

func (l *rateLimiter) wrap(h http.Handler) http.Handler {
	if l.limit <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, key := clientOf(r.RemoteAddr)
		if !l.get(key).Allow() {
			oauth.WriteError(w, oauth.RateLimited(1, "too many requests from %s; slow down and retry after the Retry-After delay", host))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// clientOf returns the host part of a RemoteAddr, as shown to the client, and its bucket's key:
// IPv4 (IPv4-mapped IPv6 included) per address, IPv6 per /64 without its zone.
func clientOf(remoteAddr string) (host string, key clientKey) {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host, clientKey{raw: host}
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64) // cannot fail: 64 bits of an IPv6 address
		ip = p.Addr()
	}
	return host, clientKey{ip: ip}
}

// get returns the client's bucket, marking it most recently seen; a new client past the table's
// size takes the place of the least recently seen one.
func (l *rateLimiter) get(key clientKey) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.byKey[key]; ok {
		l.order.MoveToFront(e)
		return e.Value.(*bucket).lim
	}
	b := &bucket{key: key, lim: rate.NewLimiter(l.limit, l.burst)}
	if l.order.Len() >= max(l.size, 1) {
		oldest := l.order.Back()
		delete(l.byKey, oldest.Value.(*bucket).key)
		oldest.Value = b
		l.order.MoveToFront(oldest)
		l.byKey[key] = oldest
		return b.lim
	}
	l.byKey[key] = l.order.PushFront(b)
	return b.lim
}

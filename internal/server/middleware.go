package server

import (
	"net"
	"net/http"
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

// rateLimiter limits requests per client IP with a token bucket each (0 disables it).
type rateLimiter struct {
	limit rate.Limit
	burst int
	mu    sync.Mutex
	byIP  map[string]*rate.Limiter
}

func newRateLimiter(perSecond float64, burst int) *rateLimiter {
	return &rateLimiter{limit: rate.Limit(perSecond), burst: burst, byIP: map[string]*rate.Limiter{}}
}

func (l *rateLimiter) wrap(h http.Handler) http.Handler {
	if l.limit <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			ip = r.RemoteAddr
		}
		if !l.get(ip).Allow() {
			oauth.WriteError(w, oauth.RateLimited(1, "too many requests from %s; slow down and retry after the Retry-After delay", ip))
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (l *rateLimiter) get(ip string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.byIP[ip]
	if !ok {
		if len(l.byIP) > 100_000 {
			clear(l.byIP) // bound memory under address churn
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.byIP[ip] = lim
	}
	return lim
}

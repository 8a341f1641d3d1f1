// Package metrics owns Signet's Prometheus collectors. Handlers report through the small methods
// here; nothing else registers collectors.
package metrics

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is one registry with Signet's collectors.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	grants   *prometheus.CounterVec
	notified *prometheus.CounterVec
}

// New registers the collectors. cacheStats reports the token cache (hits, misses, size).
func New(cacheStats func() (hits, misses uint64, size int)) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "signet_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		grants: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_token_requests_total", Help: "Token endpoint requests by grant type and outcome (ok or the OAuth error code).",
		}, []string{"grant_type", "outcome"}),
		notified: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_subject_notifications_total", Help: "Webhook notifications of exchange sessions by result (delivered or failed attempts).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.requests, m.latency, m.grants, m.notified,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cacheStats != nil {
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "signet_token_cache_hits_total", Help: "Token resolutions answered from the in-process cache."},
				func() float64 { h, _, _ := cacheStats(); return float64(h) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "signet_token_cache_misses_total", Help: "Token resolutions that read the store or verified a signature."},
				func() float64 { _, m, _ := cacheStats(); return float64(m) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "signet_token_cache_entries", Help: "Tokens held in the in-process cache."},
				func() float64 { _, _, n := cacheStats(); return float64(n) }),
		)
	}
	return m
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Route is one route's request metrics, resolved once so that a request costs no label lookups.
type Route struct {
	latency prometheus.Observer
	ok      prometheus.Counter // code 200, the usual answer
	byCode  *prometheus.CounterVec
}

// Route returns the metrics of a named route.
func (m *Metrics) Route(name string) *Route {
	byCode := m.requests.MustCurryWith(prometheus.Labels{"route": name})
	return &Route{latency: m.latency.WithLabelValues(name), ok: byCode.WithLabelValues("200"), byCode: byCode}
}

// Observe records one HTTP request.
func (r *Route) Observe(code int, d time.Duration) {
	if code == http.StatusOK {
		r.ok.Inc()
	} else {
		r.byCode.WithLabelValues(strconv.Itoa(code)).Inc()
	}
	r.latency.Observe(d.Seconds())
}

// Grant records a token endpoint outcome; err carries an OAuth code through Code() when refused.
func (m *Metrics) Grant(grantType string, err error) {
	outcome := "ok"
	var coded interface{ OAuthCode() string }
	if err != nil {
		outcome = "error"
		if errors.As(err, &coded) {
			outcome = coded.OAuthCode()
		}
	}
	if grantType == "" {
		grantType = "none"
	}
	m.grants.WithLabelValues(grantType, outcome).Inc()
}

// Notified records one webhook delivery attempt.
func (m *Metrics) Notified(ok bool) {
	result := "delivered"
	if !ok {
		result = "failed"
	}
	m.notified.WithLabelValues(result).Inc()
}

// RegisterBatchStats exports the store's group-commit writer: commits and the writes they carried.
func (m *Metrics) RegisterBatchStats(stats func() (commits, items uint64)) {
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "signet_store_commits_total", Help: "Transactions committed by the group-commit writer (one fsync each on SQLite)."},
			func() float64 { c, _ := stats(); return float64(c) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "signet_store_batched_writes_total", Help: "Writes carried by those transactions; divided by commits, the average batch."},
			func() float64 { _, n := stats(); return float64(n) }),
	)
}

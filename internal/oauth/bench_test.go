package oauth_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

// BenchmarkIntrospectHot measures the handler chain for a cached token (no network), to find what
// each introspection costs beyond HTTP.
func BenchmarkIntrospectHot(b *testing.B) {
	for _, format := range []string{store.FormatJWT, store.FormatOpaque} {
		b.Run(format, func(b *testing.B) {
			env := testenv.Start(b, testenv.Options{})
			api := env.CreateClient(store.Client{})
			app := env.CreateClient(store.Client{Audiences: []string{api.ID}, AccessTokenFormat: format})
			code, body := env.PostForm("/oauth/v2/token", map[string]string{"grant_type": "client_credentials", "audience": api.ID}, app.ID, app.Secret)
			if code != 200 {
				b.Fatal(body)
			}
			form := "token=" + body["access_token"].(string)
			h := env.Server.Handler()
			auth := "Basic " + basic(api.ID, api.Secret)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/oauth/v2/introspect", strings.NewReader(form))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", auth)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatal(rec.Body.String())
				}
			}
		})
	}
}

// BenchmarkClientCredentials measures issuing one token through the handler chain.
func BenchmarkClientCredentials(b *testing.B) {
	for _, format := range []string{store.FormatJWT, store.FormatOpaque} {
		b.Run(format, func(b *testing.B) {
			env := testenv.Start(b, testenv.Options{})
			app := env.CreateClient(store.Client{AccessTokenFormat: format})
			h := env.Server.Handler()
			auth := "Basic " + basic(app.ID, app.Secret)
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/oauth/v2/token", strings.NewReader("grant_type=client_credentials"))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", auth)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatal(rec.Body.String())
				}
			}
		})
	}
}

// BenchmarkExchangeImpersonation measures one audited impersonation through the handler chain,
// with concurrent callers so the audit writes are group-committed as in production.
func BenchmarkExchangeImpersonation(b *testing.B) {
	x := newXEnv(b)
	h := x.Server.Handler()
	form := "grant_type=" + urlEscape(grantTE) + "&client_id=" + x.spa.ID + "&subject_token=" + x.dana.ID + "&subject_token_type=" + urlEscape(typeUser) +
		"&actor_token=" + x.samToken + "&actor_token_type=" + urlEscape(typeAT) + "&reason=bench"
	b.ReportAllocs()
	b.SetParallelism(25)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/oauth/v2/token", strings.NewReader(form))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Fatal(rec.Body.String())
			}
		}
	})
}

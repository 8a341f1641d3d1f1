package ui

import (
	"bytes"
	"net/http"
	"strings"
	"time"
)

// Static serves signet.css, theme.css and the logo under StaticPath (mount it there without stripping
// the prefix; a stripped path works too) and 404 for anything else. Pages link to the assets with their
// content hash in the query, which is cached for a year; other requests revalidate with the ETag.
func (r *Renderer) Static() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		name := strings.TrimPrefix(strings.TrimPrefix(req.URL.Path, StaticPath), "/")
		a, ok := r.assets[name]
		if !ok {
			http.NotFound(w, req)
			return
		}
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.Set("Content-Type", a.contentType)
		// An SVG logo opened directly must not run script in Signet's origin.
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("ETag", `"`+a.hash+`"`)
		if req.URL.Query().Get("v") == a.hash {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		http.ServeContent(w, req, "", time.Time{}, bytes.NewReader(a.body))
	})
}

package oauth

import (
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// maxFormBytes bounds a request body; OAuth requests are small.
const maxFormBytes = 64 << 10

// repeatable lists parameters that may appear more than once (RFC 8693 §2.1, RFC 8707 §2).
var repeatable = map[string]bool{"resource": true, "audience": true}

// Form is a parsed application/x-www-form-urlencoded request body.
type Form struct{ url.Values }

// Get returns the parameter's single value ("" when absent).
func (f Form) Get(name string) string { return f.Values.Get(name) }

// ParseForm reads a POST form body, refusing what RFC 6749 §3.1 forbids: other methods, other
// content types, oversized bodies, malformed encoding and repeated parameters. Query parameters
// are ignored: credentials never travel in URLs.
func ParseForm(w http.ResponseWriter, r *http.Request) (Form, error) {
	if r.Method != http.MethodPost {
		e := InvalidRequest("use POST with an application/x-www-form-urlencoded body; got %s", r.Method)
		e.Status = http.StatusMethodNotAllowed
		w.Header().Set("Allow", http.MethodPost)
		return Form{}, e
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return Form{}, InvalidRequest("the request body must be application/x-www-form-urlencoded; got Content-Type %q", ct)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return Form{}, InvalidRequest("the request body is larger than %d bytes", maxFormBytes)
		}
		return Form{}, InvalidRequest("malformed form body: %s", cleanFormError(err))
	}
	for name, values := range r.PostForm {
		if len(values) > 1 && !repeatable[name] {
			return Form{}, InvalidRequest("parameter %q was sent more than once; send each parameter once", name)
		}
	}
	return Form{r.PostForm}, nil
}

// cleanFormError keeps the parse error's gist without echoing a possibly secret body.
func cleanFormError(err error) string {
	var ee url.EscapeError
	if errors.As(err, &ee) {
		return "invalid percent-encoding"
	}
	s := err.Error()
	if i := strings.Index(s, ":"); i > 0 {
		s = s[:i]
	}
	return s
}

// listParam returns space-separated values (scope) as a list without duplicates.
func listParam(v string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range strings.Fields(v) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

package oauth

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unsafe"
)

// maxFormBytes bounds a request body; OAuth requests are small.
const maxFormBytes = 64 << 10

const formType = "application/x-www-form-urlencoded"

// repeatable reports the parameters that may appear more than once (RFC 8693 §2.1, RFC 8707 §2).
func repeatable(name string) bool { return name == "resource" || name == "audience" }

// Form is a parsed application/x-www-form-urlencoded request body: its parameters in the order
// sent, each once except the repeatable ones.
type Form struct{ params []param }

type param struct{ name, value string }

// Get returns the parameter's value ("" when absent).
func (f Form) Get(name string) string {
	for _, p := range f.params {
		if p.name == name {
			return p.value
		}
	}
	return ""
}

// All returns every value of a repeatable parameter, in the order sent.
func (f Form) All(name string) []string {
	var out []string
	for _, p := range f.params {
		if p.name == name {
			out = append(out, p.value)
		}
	}
	return out
}

// A token names each requested audience once, and a request may name at most maxTargets of them,
// each at most maxTargetBytes long: more is a mistake or an attempt to mint a token too large to
// use (1,900 copies of one value made a 56 KB token). docs/errors.md states both limits.
const (
	maxTargets     = 10
	maxTargetBytes = 512
)

// Targets returns the requested audiences: the audience values, then the resource values
// (RFC 8693 §2.1, RFC 8707 §2), each once, in the order first sent. More than 10 distinct values,
// or a value longer than 512 bytes, is refused with invalid_target.
func (f Form) Targets() ([]string, error) {
	var out []string
	var sent map[string]bool // past the limit: only counts the distinct values, for the description
	for _, name := range [...]string{"audience", "resource"} {
		for _, p := range f.params {
			switch {
			case p.name != name:
			case len(p.value) > maxTargetBytes:
				return nil, InvalidTarget("audience and resource values may be at most %d bytes long; this request sent one of %d bytes", maxTargetBytes, len(p.value))
			case sent != nil:
				sent[p.value] = true
			case !slices.Contains(out, p.value): // at most maxTargets comparisons
				out = append(out, p.value)
				if len(out) > maxTargets {
					sent = make(map[string]bool, 2*len(out))
					for _, v := range out {
						sent[v] = true
					}
				}
			}
		}
	}
	if sent != nil {
		return nil, InvalidTarget("send at most %d distinct audience and resource values; this request sent %d", maxTargets, len(sent))
	}
	return out, nil
}

// ParseForm reads a POST form body, refusing what RFC 6749 §3.1 forbids: other methods, other
// content types, oversized bodies, malformed encoding and repeated parameters. Query parameters
// are ignored: credentials never travel in URLs.
//
// It is every OAuth request's first step, so it is lean: the body is read into one buffer sized by
// Content-Length, and values without escapes are slices of it (net/http's ParseForm copies the
// body and builds two maps, which was half of a cached introspection's cost).
func ParseForm(w http.ResponseWriter, r *http.Request) (Form, error) {
	if r.Method != http.MethodPost {
		e := InvalidRequest("use POST with an application/x-www-form-urlencoded body; got %s", r.Method)
		e.Status = http.StatusMethodNotAllowed
		w.Header().Set("Allow", http.MethodPost)
		return Form{}, e
	}
	if ct := r.Header.Get("Content-Type"); ct != formType {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != formType {
			return Form{}, InvalidRequest("the request body must be application/x-www-form-urlencoded; got Content-Type %q", ct)
		}
	}
	body, err := readBody(r)
	if err != nil {
		return Form{}, err
	}
	return parseFormBody(body)
}

// readBody returns the request body, at most maxFormBytes of it.
func readBody(r *http.Request) (string, error) {
	if r.ContentLength > maxFormBytes {
		return "", InvalidRequest("the request body is larger than %d bytes", maxFormBytes)
	}
	if r.Body == nil || r.ContentLength == 0 {
		return "", nil
	}
	var buf []byte
	var err error
	if r.ContentLength > 0 {
		buf = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, buf)
	} else { // chunked: length unknown until the end
		buf, err = io.ReadAll(io.LimitReader(r.Body, maxFormBytes+1))
		if err == nil && len(buf) > maxFormBytes {
			return "", InvalidRequest("the request body is larger than %d bytes", maxFormBytes)
		}
	}
	if err != nil {
		return "", InvalidRequest("malformed form body: %s", cleanFormError(err))
	}
	// buf is never written again, so the string may share it: values are slices of one copy.
	return unsafe.String(unsafe.SliceData(buf), len(buf)), nil
}

// parseFormBody splits an application/x-www-form-urlencoded body (the WHATWG URL standard's
// parsing, as net/url does it: '&' separates, '+' is a space, ';' is refused).
func parseFormBody(s string) (Form, error) {
	// Sized for the usual request; a body of many separators grows it as it parses instead.
	f := Form{params: make([]param, 0, min(strings.Count(s, "&")+1, 16))}
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		if strings.Contains(pair, ";") {
			return Form{}, InvalidRequest("malformed form body: %s", "invalid semicolon separator in query")
		}
		if pair == "" {
			continue
		}
		name, value, _ := strings.Cut(pair, "=")
		name, err1 := unescape(name)
		value, err2 := unescape(value)
		if err := errors.Join(err1, err2); err != nil {
			return Form{}, InvalidRequest("malformed form body: %s", cleanFormError(err))
		}
		f.params = append(f.params, param{name, value})
	}
	if name, ok := f.repeated(); ok {
		return Form{}, InvalidRequest("parameter %q was sent more than once; send each parameter once", name)
	}
	return f, nil
}

// unescape decodes percent-encoding and '+'; most values (tokens, IDs) have neither and are
// returned as they are after two vectorised scans.
func unescape(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, nil
	}
	return url.QueryUnescape(s)
}

// repeated returns a parameter sent more than once that may not be.
func (f Form) repeated() (string, bool) {
	if len(f.params) <= 16 { // the usual request: a few comparisons, no map
		for i, p := range f.params {
			for _, q := range f.params[:i] {
				if p.name == q.name && !repeatable(p.name) {
					return p.name, true
				}
			}
		}
		return "", false
	}
	seen := make(map[string]bool, len(f.params))
	for _, p := range f.params {
		if seen[p.name] && !repeatable(p.name) {
			return p.name, true
		}
		seen[p.name] = true
	}
	return "", false
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

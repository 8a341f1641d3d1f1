package oauth

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// parse runs ParseForm on a POST with body, as a server would see it.
func parse(t testing.TB, body, contentType string, chunked bool) (Form, error) {
	t.Helper()
	var rd io.Reader = strings.NewReader(body)
	if chunked {
		rd = io.MultiReader(rd) // hides the length: httptest then sends no Content-Length
	}
	r := httptest.NewRequest(http.MethodPost, "/oauth/v2/token", rd)
	if chunked {
		r.ContentLength = -1
	}
	r.Header.Set("Content-Type", contentType)
	return ParseForm(httptest.NewRecorder(), r)
}

func description(err error) string {
	var e *Error
	if !errors.As(err, &e) {
		return "not an OAuth error: " + err.Error()
	}
	return e.Description
}

func TestParseForm(t *testing.T) {
	f, err := parse(t, "grant_type=client_credentials&scope=read+write%20admin&&audience=a&resource=r&audience=b&flag&client_id=x%2By", formType, false)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"grant_type": "client_credentials", "scope": "read write admin", "flag": "", "client_id": "x+y", "absent": ""} {
		if got := f.Get(name); got != want {
			t.Errorf("Get(%q) = %q, want %q", name, got, want)
		}
	}
	if got := f.All("audience"); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("All(audience) = %q, want [a b] in the order sent", got)
	}
	if got := f.All("absent"); got != nil {
		t.Errorf("All(absent) = %q", got)
	}
	// A charset parameter on the media type is fine; the chunked path reads the same.
	if f, err := parse(t, "token=abc", formType+"; charset=UTF-8", true); err != nil || f.Get("token") != "abc" {
		t.Errorf("chunked with charset: %v %q", err, f.Get("token"))
	}

	refusals := []struct {
		name, body, contentType string
		chunked                 bool
		want                    string
	}{
		{"bad escape", "token=%zz", formType, false, "malformed form body: invalid percent-encoding"},
		{"bad escape in a name", "to%2ken=a", formType, false, "malformed form body: invalid percent-encoding"},
		{"semicolon", "a=1;b=2", formType, false, "malformed form body: invalid semicolon separator in query"},
		{"repeated", "token=a&token_type_hint=x&token=b", formType, false, `parameter "token" was sent more than once`},
		{"repeated among many", strings.Repeat("audience=x&", 40) + "scope=a&scope=b", formType, false, `parameter "scope" was sent more than once`},
		{"too large", strings.Repeat("a", maxFormBytes+1), formType, false, "larger than 65536 bytes"},
		{"too large, chunked", strings.Repeat("a", maxFormBytes+1), formType, true, "larger than 65536 bytes"},
		{"JSON", `{"token":"a"}`, "application/json", false, "must be application/x-www-form-urlencoded"},
	}
	for _, c := range refusals {
		t.Run(c.name, func(t *testing.T) {
			_, err := parse(t, c.body, c.contentType, c.chunked)
			if err == nil || !strings.Contains(description(err), c.want) {
				t.Fatalf("got %v, want a refusal containing %q", err, c.want)
			}
		})
	}

	t.Run("body shorter than its Content-Length", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("token=abc"))
		r.ContentLength = 100
		r.Header.Set("Content-Type", formType)
		_, err := ParseForm(httptest.NewRecorder(), r)
		if err == nil || description(err) != "malformed form body: unexpected EOF" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("GET", func(t *testing.T) {
		w := httptest.NewRecorder()
		_, err := ParseForm(w, httptest.NewRequest(http.MethodGet, "/?token=a", nil))
		var e *Error
		if !errors.As(err, &e) || e.Status != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST" {
			t.Fatalf("got %v, Allow %q", err, w.Header().Get("Allow"))
		}
	})
}

// TestTargets: audience then resource values, each once in the order first sent; more than 10
// distinct values or a value over 512 bytes is refused with invalid_target.
func TestTargets(t *testing.T) {
	values := func(name string, n int, value func(i int) string) string {
		var b strings.Builder
		for i := range n {
			b.WriteString("&" + name + "=" + url.QueryEscape(value(i)))
		}
		return b.String()
	}
	nth := func(i int) string { return fmt.Sprintf("https://api%d.example", i) }
	accepted := []struct {
		name, body string
		want       []string
	}{
		{"none", "grant_type=client_credentials", nil},
		{"audiences before resources", "resource=r1&audience=a1&resource=r2&audience=a2", []string{"a1", "a2", "r1", "r2"}},
		{"repeats kept once, first order", "audience=b&resource=a&audience=a&resource=b&audience=b&resource=c", []string{"b", "a", "c"}},
		{"1,900 copies of one value", "grant_type=x" + values("audience", 1900, func(int) string { return "api" }), []string{"api"}},
		{"10 distinct, each twice", "grant_type=x" + values("audience", 10, nth) + values("resource", 10, nth), []string{nth(0), nth(1), nth(2), nth(3), nth(4), nth(5), nth(6), nth(7), nth(8), nth(9)}},
		{"a 512-byte value", "audience=" + strings.Repeat("a", 512), []string{strings.Repeat("a", 512)}},
	}
	for _, c := range accepted {
		t.Run(c.name, func(t *testing.T) {
			f, err := parseFormBody(c.body)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Targets()
			if err != nil || !slices.Equal(got, c.want) {
				t.Fatalf("Targets() = %q, %v; want %q", got, err, c.want)
			}
		})
	}
	refused := []struct{ name, body, want string }{
		{"11 distinct", "grant_type=x" + values("audience", 11, nth), "send at most 10 distinct audience and resource values; this request sent 11"},
		{"11 distinct across audience and resource", values("audience", 6, nth) + values("resource", 11, nth), "send at most 10 distinct audience and resource values; this request sent 11"},
		{"the count is of distinct values", values("audience", 40, nth) + values("resource", 40, nth) + values("audience", 500, func(int) string { return "x" }), "send at most 10 distinct audience and resource values; this request sent 41"},
		{"a 513-byte audience", "audience=" + strings.Repeat("a", 513), "audience and resource values may be at most 512 bytes long; this request sent one of 513 bytes"},
		{"a 600-byte resource after good values", "audience=a&resource=b&resource=" + strings.Repeat("b", 600), "audience and resource values may be at most 512 bytes long; this request sent one of 600 bytes"},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			f, err := parseFormBody(c.body)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Targets()
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeInvalidTarget || e.Status != http.StatusBadRequest || e.Description != c.want {
				t.Fatalf("Targets() = %q, %v; want invalid_target %q", got, err, c.want)
			}
		})
	}
}

// FuzzParseForm checks the parser against net/url's, which it replaces on the hot path: the same
// bodies are refused, and accepted bodies give the same values in the same order; repeated
// parameters are refused unless they may repeat.
func FuzzParseForm(f *testing.F) {
	for _, s := range []string{"grant_type=client_credentials&scope=a+b", "a=%41&&b&=c&a=d", "x=%zz", "a;b=c", "audience=1&resource=2&audience=3", "%=&+=+", "k=v%", "=&=", "a%2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if strings.Count(body, "&") >= 1000 {
			return // net/url caps the number of parameters; the parser here is bounded by size
		}
		want, wantErr := url.ParseQuery(body)
		got, err := parseFormBody(body)
		if wantErr != nil {
			if err == nil {
				t.Fatalf("%q: net/url refuses (%v), parseFormBody accepts", body, wantErr)
			}
			return
		}
		var repeated bool
		n := 0
		for name, vs := range want {
			n += len(vs)
			repeated = repeated || (len(vs) > 1 && !repeatable(name))
		}
		if repeated {
			if err == nil || !strings.Contains(description(err), "more than once") {
				t.Fatalf("%q: a repeated parameter must be refused, got %v", body, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("%q: net/url accepts, parseFormBody refuses: %v", body, err)
		}
		if len(got.params) != n {
			t.Fatalf("%q: %d parameters, net/url has %d", body, len(got.params), n)
		}
		for name, vs := range want {
			if all := got.All(name); !slices.Equal(all, vs) {
				t.Fatalf("%q: %q = %q, net/url has %q", body, name, all, vs)
			}
		}
	})
}

// BenchmarkParseForm is the cost of reading an introspection request's body.
func BenchmarkParseForm(b *testing.B) {
	body := "token=eyJhbGciOiJFUzI1NiIsImtpZCI6ImtleSIsInR5cCI6ImF0K2p3dCJ9." + strings.Repeat("eyJzdWIiOiJ4In0", 30) + ".sig&token_type_hint=access_token"
	rd := strings.NewReader(body)
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Header.Set("Content-Type", formType)
	r.ContentLength = int64(len(body))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		r.Body = io.NopCloser(rd)
		if _, err := ParseForm(nil, r); err != nil {
			b.Fatal(err)
		}
	}
}

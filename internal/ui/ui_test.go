package ui

import (
	"bytes"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/net/html"
)

const csrf = "csrf-token-123"

var (
	started  = time.Date(2026, 11, 29, 14, 5, 0, 0, time.UTC)
	lastSeen = time.Date(2026, 11, 29, 15, 30, 0, 0, time.FixedZone("CET", 3600))
)

func common(title string) Common {
	return Common{Title: title, CSRF: csrf, FormTargets: []string{"https://app.example.com"},
		SignedInAs: "alice", AccountURL: "/ui/account"}
}

// samplePages is one of every page with representative data, keyed by a name for test output.
func samplePages() map[string]Page {
	hidden := []Field{{"request", "req-1"}}
	return map[string]Page{
		"Login": Login{Common: common(""), Action: "/ui/login", Hidden: hidden, ClientName: "Shop",
			Username: "alice", Error: "Wrong username or password.", Notice: "Your sign-in request expired."},
		"SecondFactor": SecondFactor{Common: common(""), Action: "/ui/login/otp", Hidden: hidden,
			Error: "That code did not work.", Username: "alice"},
		"EnrollTOTP": EnrollTOTP{Common: common(""), Action: "/ui/account/totp", Hidden: hidden,
			QRDataURI: "data:image/png;base64,iVBORw0KGgo=", Secret: "JBSWY3DPEHPK3PXP", Error: "That code did not work."},
		"RecoveryCodes": RecoveryCodes{Common: common(""), Action: "/ui/account/recovery", Hidden: hidden,
			Codes: []string{"abcd-efgh", "ijkl-mnop"}},
		"ChangePassword": ChangePassword{Common: common(""), Action: "/ui/account/password", Hidden: hidden,
			Error: "The passwords do not match.", MinLength: 12},
		"Consent": Consent{Common: common(""), Action: "/ui/consent", Hidden: hidden, ClientName: "Shop",
			ClientURI: "https://shop.example.com", Scopes: []Scope{{"openid", "Know who you are"}, {"email", "See your email address"}},
			Username: "alice"},
		"Error":         Error{Common: common("Sign-in failed"), Message: "The application sent an invalid request.", Detail: "redirect_uri is not registered", Code: "invalid_request"},
		"LogoutConfirm": LogoutConfirm{Common: common(""), Action: "/ui/logout", Hidden: hidden, ClientName: "Shop"},
		"LoggedOut":     LoggedOut{Common: common(""), ReturnURL: "https://shop.example.com/", ReturnName: "Shop"},
		"FormPost": FormPost{Common: common(""), Action: "https://app.example.com/cb",
			Fields: []Field{{"code", "c0de"}, {"state", "st4te"}}},
		"Account": Account{Common: common(""), Username: "alice", DisplayName: "Alice Liddell", Email: "alice@example.com",
			Sessions: []SessionRow{
				{ID: "s1", Device: "Firefox on Linux", IP: "192.0.2.1", Started: started, LastSeen: lastSeen, Methods: []string{"pwd", "otp"}, Current: true},
				{ID: "s2", Device: "Safari on iPhone", IP: "198.51.100.7", Started: started, LastSeen: lastSeen, Methods: []string{"pwd"}},
			},
			TOTPEnrolled: true, RecoveryLeft: 8,
			Acts: []ActRow{
				{Kind: "impersonation", Actor: "bob", Client: "Support desk", Reason: "ticket 42", Started: started, Until: started.Add(time.Hour), Ended: started.Add(20 * time.Minute), EndedHow: "ended by bob"},
				{Kind: "delegation", Actor: "carol", Client: "Reports", Started: started, Until: started.Add(24 * time.Hour)},
			},
			EnrollURL: "/ui/account/totp", RemoveTOTPAction: "/ui/account/totp/remove", NewRecoveryAction: "/ui/account/recovery",
			EndSessionAction: "/ui/account/sessions/end", ChangePasswordURL: "/ui/account/password", SignOutURL: "/ui/logout",
			Message: "Signed out 2 other sessions"},
	}
}

func newTestRenderer(t *testing.T) *Renderer {
	t.Helper()
	r, err := New(Branding{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func render(t *testing.T, r *Renderer, status int, p Page) (*httptest.ResponseRecorder, *html.Node) {
	t.Helper()
	w := httptest.NewRecorder()
	r.Render(w, status, p)
	doc, err := html.Parse(bytes.NewReader(w.Body.Bytes()))
	if err != nil {
		t.Fatalf("parsing the page: %v", err)
	}
	return w, doc
}

func findAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func tag(name string) func(*html.Node) bool {
	return func(n *html.Node) bool { return n.Data == name }
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func attrVal(n *html.Node, key string) string { v, _ := attr(n, key); return v }

// directives parses a Content-Security-Policy header.
func directives(t *testing.T, csp string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range strings.Split(csp, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		if _, dup := out[name]; dup {
			t.Errorf("CSP directive %q twice in %q", name, csp)
		}
		out[name] = value
	}
	return out
}

func TestEveryPageSendsTheSecurityHeaders(t *testing.T) {
	r := newTestRenderer(t)
	for name, p := range samplePages() {
		t.Run(name, func(t *testing.T) {
			w, _ := render(t, r, http.StatusUnauthorized, p)
			if w.Code != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", w.Code)
			}
			want := map[string]string{
				"X-Frame-Options":        "DENY",
				"Referrer-Policy":        "no-referrer",
				"X-Content-Type-Options": "nosniff",
				"Cache-Control":          "no-store",
				"Content-Type":           "text/html; charset=utf-8",
			}
			for k, v := range want {
				if got := w.Header().Values(k); len(got) != 1 || got[0] != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			csp := directives(t, w.Header().Get("Content-Security-Policy"))
			wantCSP := map[string]string{
				"default-src":     "'none'",
				"style-src":       "'self'",
				"img-src":         "'self' data:",
				"base-uri":        "'none'",
				"frame-ancestors": "'none'",
				"form-action":     "'self' https://app.example.com",
			}
			if _, ok := p.(FormPost); ok {
				if !strings.HasPrefix(csp["script-src"], "'nonce-") {
					t.Errorf("FormPost script-src %q, want a nonce", csp["script-src"])
				}
				wantCSP["script-src"] = csp["script-src"]
			}
			if !reflect.DeepEqual(csp, wantCSP) {
				t.Errorf("CSP %v\nwant %v", csp, wantCSP)
			}
		})
	}
}

func TestFormPostScriptCarriesAFreshNonce(t *testing.T) {
	r := newTestRenderer(t)
	p := samplePages()["FormPost"]
	seen := map[string]bool{}
	for range 3 {
		w, doc := render(t, r, http.StatusOK, p)
		src := directives(t, w.Header().Get("Content-Security-Policy"))["script-src"]
		nonce := strings.TrimSuffix(strings.TrimPrefix(src, "'nonce-"), "'")
		if len(nonce) < 22 || strings.ContainsAny(nonce, " ';") {
			t.Fatalf("script-src %q: no usable nonce", src)
		}
		scripts := findAll(doc, tag("script"))
		if len(scripts) != 1 || attrVal(scripts[0], "nonce") != nonce {
			t.Fatalf("want one script with nonce %q, got %d scripts", nonce, len(scripts))
		}
		if seen[nonce] {
			t.Fatalf("nonce %q reused", nonce)
		}
		seen[nonce] = true
		if !strings.Contains(w.Body.String(), "<noscript>") || !strings.Contains(w.Body.String(), ">Continue</button>") {
			t.Error("no Continue button inside <noscript>")
		}
		forms := findAll(doc, tag("form"))
		if len(forms) != 1 || attrVal(forms[0], "action") != "https://app.example.com/cb" || attrVal(forms[0], "method") != "post" {
			t.Fatalf("form_post form wrong: %d forms", len(forms))
		}
		fields := map[string]string{}
		for _, in := range findAll(forms[0], tag("input")) {
			fields[attrVal(in, "name")] = attrVal(in, "value")
		}
		if want := map[string]string{"code": "c0de", "state": "st4te"}; !reflect.DeepEqual(fields, want) {
			t.Errorf("form_post fields %v, want %v (and no csrf: the form goes to the client)", fields, want)
		}
	}
	for name, p := range samplePages() {
		if name == "FormPost" {
			continue
		}
		w, doc := render(t, r, http.StatusOK, p)
		if n := len(findAll(doc, tag("script"))); n != 0 {
			t.Errorf("%s: %d script elements", name, n)
		}
		if strings.Contains(w.Header().Get("Content-Security-Policy"), "script-src") {
			t.Errorf("%s: script-src in CSP", name)
		}
	}
}

func TestEveryPostFormCarriesTheCSRFField(t *testing.T) {
	r := newTestRenderer(t)
	for name, p := range samplePages() {
		if name == "FormPost" {
			continue // posts to the client, which must not see Signet's CSRF token
		}
		_, doc := render(t, r, http.StatusOK, p)
		forms := findAll(doc, tag("form"))
		for i, f := range forms {
			if !strings.EqualFold(attrVal(f, "method"), "post") {
				t.Errorf("%s form %d: method %q", name, i, attrVal(f, "method"))
				continue
			}
			n := 0
			for _, in := range findAll(f, tag("input")) {
				if attrVal(in, "name") == "csrf" {
					n++
					if attrVal(in, "type") != "hidden" || attrVal(in, "value") != csrf {
						t.Errorf("%s form %d: csrf input %v", name, i, in.Attr)
					}
				}
			}
			if n != 1 {
				t.Errorf("%s form %d (%s): %d csrf fields", name, i, attrVal(f, "action"), n)
			}
		}
		want := map[string]int{"Account": 4, "Error": 0, "LoggedOut": 0}
		wantN, ok := want[name]
		if !ok {
			wantN = 1
		}
		if len(forms) != wantN {
			t.Errorf("%s: %d forms, want %d", name, len(forms), wantN)
		}
	}
}

func TestPagesAreAccessible(t *testing.T) {
	r := newTestRenderer(t)
	wantAutocomplete := map[string]string{
		"username": "username", "password": "current-password", "current_password": "current-password",
		"new_password": "new-password", "confirm_password": "new-password", "code": "one-time-code",
	}
	for name, p := range samplePages() {
		t.Run(name, func(t *testing.T) {
			_, doc := render(t, r, http.StatusOK, p)
			if h := findAll(doc, tag("html")); len(h) != 1 || attrVal(h[0], "lang") != "en" {
				t.Error(`no <html lang="en">`)
			}
			if n := len(findAll(doc, tag("h1"))); n != 1 {
				t.Errorf("%d h1 elements", n)
			}
			labels := map[string]bool{}
			for _, l := range findAll(doc, tag("label")) {
				labels[attrVal(l, "for")] = true
			}
			ids := map[string]*html.Node{}
			for _, n := range findAll(doc, func(n *html.Node) bool { _, ok := attr(n, "id"); return ok }) {
				if _, dup := ids[attrVal(n, "id")]; dup {
					t.Errorf("id %q twice", attrVal(n, "id"))
				}
				ids[attrVal(n, "id")] = n
			}
			for _, in := range findAll(doc, func(n *html.Node) bool { return n.Data == "input" || n.Data == "select" || n.Data == "textarea" }) {
				typ := attrVal(in, "type")
				if typ == "hidden" || typ == "submit" {
					continue
				}
				field := attrVal(in, "name")
				if id := attrVal(in, "id"); id == "" || !labels[id] {
					t.Errorf("input %q has no <label for>", field)
				}
				if want, ok := wantAutocomplete[field]; !ok || attrVal(in, "autocomplete") != want {
					t.Errorf("input %q autocomplete %q, want %q", field, attrVal(in, "autocomplete"), want)
				}
				// Enrolment asks for digits only (a numeric keypad helps); the second-factor field also
				// takes recovery codes, which have letters, so it must not force one.
				wantMode := map[string]string{"EnrollTOTP": "numeric", "SecondFactor": ""}[name]
				if field == "code" && attrVal(in, "inputmode") != wantMode {
					t.Errorf("code field inputmode %q, want %q", attrVal(in, "inputmode"), wantMode)
				}
				for _, ref := range strings.Fields(attrVal(in, "aria-describedby")) {
					if ids[ref] == nil {
						t.Errorf("input %q describedby missing id %q", field, ref)
					}
				}
			}
			alerts := findAll(doc, func(n *html.Node) bool { return attrVal(n, "role") == "alert" })
			if v := reflect.ValueOf(p).FieldByName("Error"); v.IsValid() && v.String() != "" {
				if len(alerts) != 1 {
					t.Fatalf("%d role=alert elements, want 1", len(alerts))
				}
				id := attrVal(alerts[0], "id")
				described := findAll(doc, func(n *html.Node) bool {
					return n.Data == "input" && id != "" && strings.Contains(" "+attrVal(n, "aria-describedby")+" ", " "+id+" ")
				})
				if len(described) == 0 {
					t.Errorf("the error %q is referenced by no field's aria-describedby", id)
				}
			} else if len(alerts) != 0 {
				t.Errorf("role=alert without an error")
			}
		})
	}
}

const hostile = `<script>alert(1)</script>" onmouseover=alert(2) '`

// fillStrings sets every string in v (fields, slices, pointed-to structs) to hostile.
func fillStrings(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(hostile)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			return
		}
		for i := range v.NumField() {
			fillStrings(v.Field(i))
		}
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fillStrings(v.Elem())
	case reflect.Slice:
		if v.Len() == 0 {
			v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		}
		for i := range v.Len() {
			fillStrings(v.Index(i))
		}
	}
}

func TestHostileValuesAreEscaped(t *testing.T) {
	r := newTestRenderer(t)
	for name, sample := range samplePages() {
		t.Run(name, func(t *testing.T) {
			pv := reflect.New(reflect.TypeOf(sample))
			pv.Elem().Set(reflect.ValueOf(sample))
			fillStrings(pv.Elem())
			if fp, ok := pv.Interface().(*FormPost); ok {
				fp.Action = "https://app.example.com/cb" // a hostile action is refused: TestFormPostRefusesScriptSchemes
			}
			w, doc := render(t, r, http.StatusOK, pv.Interface().(Page))
			if w.Code != http.StatusOK {
				t.Fatalf("status %d", w.Code)
			}
			body := w.Body.String()
			if strings.Contains(body, "<script>alert") || strings.Contains(body, `" onmouseover`) {
				t.Errorf("hostile value unescaped:\n%s", body)
			}
			if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
				t.Errorf("hostile text not shown escaped")
			}
			if n := findAll(doc, func(n *html.Node) bool { _, ok := attr(n, "onmouseover"); return ok }); len(n) > 0 {
				t.Errorf("%d elements with onmouseover", len(n))
			}
			wantScripts := 0
			if name == "FormPost" {
				wantScripts = 1
			}
			if n := len(findAll(doc, tag("script"))); n != wantScripts {
				t.Errorf("%d script elements, want %d", n, wantScripts)
			}
			if csp := w.Header().Get("Content-Security-Policy"); strings.ContainsAny(csp, "<>\"") {
				t.Errorf("hostile form target in CSP: %q", csp)
			}
		})
	}
}

func TestFormPostRefusesScriptSchemes(t *testing.T) {
	r := newTestRenderer(t)
	r.ErrorLog = slogTo(io.Discard)
	for _, action := range []string{"javascript:alert(1)", "  JavaScript:alert(1)", "java\tscript:alert(1)",
		"data:text/html,<script>alert(1)</script>", "VBScript:msgbox", "/relative/cb", "", "https://app.example.com/a b"} {
		w, doc := render(t, r, http.StatusOK, FormPost{Common: common(""), Action: action, Fields: []Field{{"code", "c"}}})
		if w.Code != http.StatusInternalServerError || len(findAll(doc, tag("form"))) != 0 || len(findAll(doc, tag("script"))) != 0 {
			t.Errorf("action %q: status %d, a form or script rendered", action, w.Code)
		}
		if strings.Contains(w.Header().Get("Content-Security-Policy"), "script-src") {
			t.Errorf("action %q: script-src on the error page", action)
		}
	}
	for action, formAction := range map[string]string{
		"https://app.example.com/cb?x=1": "https://app.example.com",
		"com.example.app:/callback":      "com.example.app:",
		"http://127.0.0.1:8400/cb":       "http://127.0.0.1:8400",
	} {
		w, doc := render(t, r, http.StatusOK, FormPost{Action: action})
		forms := findAll(doc, tag("form"))
		if w.Code != http.StatusOK || len(forms) != 1 || attrVal(forms[0], "action") != action {
			t.Errorf("action %q: status %d, forms %d", action, w.Code, len(forms))
		}
		if got := directives(t, w.Header().Get("Content-Security-Policy"))["form-action"]; got != "'self' "+formAction {
			t.Errorf("action %q: form-action %q, want %q", action, got, "'self' "+formAction)
		}
	}
}

func TestFormTargetsBecomeFormActionSources(t *testing.T) {
	r := newTestRenderer(t)
	c := Common{FormTargets: []string{"https://App.Example.com/cb?x=1", "https://app.example.com", "com.example.app:/cb",
		"https://a.example; script-src *", "javascript:alert(1)", "not a url", "https://b.example:8443"}}
	w, _ := render(t, r, http.StatusOK, Error{Common: c})
	got := directives(t, w.Header().Get("Content-Security-Policy"))["form-action"]
	if want := "'self' https://app.example.com com.example.app: https://b.example:8443"; got != want {
		t.Errorf("form-action %q, want %q", got, want)
	}
}

func TestEnrollTOTPShowsOnlyPNGDataURIs(t *testing.T) {
	r := newTestRenderer(t)
	for uri, wantImg := range map[string]bool{
		"data:image/png;base64,iVBORw0KGgo=":     true,
		"data:image/svg+xml;base64,PHN2Zz4=":     false,
		"https://evil.example/qr.png":            false,
		"javascript:alert(1)":                    false,
		"data:image/png;base64,abc\" onerror=x ": false,
		"":                                       false,
	} {
		_, doc := render(t, r, http.StatusOK, EnrollTOTP{Common: common(""), QRDataURI: uri, Secret: "jbswy3dpehpk3pxp"})
		imgs := findAll(doc, func(n *html.Node) bool { return n.Data == "img" && strings.HasPrefix(attrVal(n, "src"), "data:") })
		if qr := findAll(doc, func(n *html.Node) bool { return n.Data == "img" && attrVal(n, "class") == "qr" }); len(qr) != len(imgs) {
			t.Errorf("%q: QR image with a non-data src", uri)
		}
		if (len(imgs) == 1) != wantImg || len(imgs) > 1 || (wantImg && attrVal(imgs[0], "src") != uri) {
			t.Errorf("%q: %d data images, want image %v", uri, len(imgs), wantImg)
		}
		secret := findAll(doc, func(n *html.Node) bool { return attrVal(n, "class") == "secret" })
		if len(secret) != 1 || secret[0].FirstChild == nil || secret[0].FirstChild.Data != "JBSW Y3DP EHPK 3PXP" {
			t.Errorf("%q: secret not shown in groups of four", uri)
		}
	}
}

func TestEnrollTOTPWording(t *testing.T) {
	r := newTestRenderer(t)
	w, _ := render(t, r, http.StatusOK, EnrollTOTP{Common: common(""), Required: true})
	if !strings.Contains(w.Body.String(), "Your organisation requires a second factor") || strings.Contains(w.Body.String(), ">Cancel<") {
		t.Error("required enrolment: wrong wording or a Cancel link")
	}
	w, _ = render(t, r, http.StatusOK, EnrollTOTP{Common: common("")})
	if !strings.Contains(w.Body.String(), `<a class="button secondary" href="/ui/account">Cancel</a>`) {
		t.Error("optional enrolment: no Cancel link to the account page")
	}
}

func TestLoggedOutLinksBackOnlyToSafeURLs(t *testing.T) {
	r := newTestRenderer(t)
	for url, want := range map[string]bool{"https://shop.example.com/": true, "com.example.app:/out": true, "javascript:alert(1)": false, "": false} {
		_, doc := render(t, r, http.StatusOK, LoggedOut{ReturnURL: url, ReturnName: "Shop"})
		links := findAll(doc, func(n *html.Node) bool { return n.Data == "a" && attrVal(n, "href") == url })
		if (len(links) == 1) != want {
			t.Errorf("%q: %d links back, want link %v", url, len(links), want)
		}
	}
}

func TestBrandingValidation(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\nrest")
	for _, c := range []struct {
		name string
		b    Branding
		ok   bool
	}{
		{"zero value", Branding{}, true},
		{"six digits", Branding{PrimaryColor: "#123abc", AccentColor: "#ABCDEF"}, true},
		{"three digits", Branding{PrimaryColor: "#1a2"}, true},
		{"css injection", Branding{PrimaryColor: "red; background:url(x)"}, false},
		{"named colour", Branding{PrimaryColor: "red"}, false},
		{"four digits", Branding{PrimaryColor: "#1234"}, false},
		{"no hash", Branding{PrimaryColor: "123abc"}, false},
		{"trailing brace", Branding{PrimaryColor: "#123abc}"}, false},
		{"accent injection", Branding{AccentColor: "#fff;}body{display:none"}, false},
		{"png logo", Branding{Logo: png, LogoType: "image/png"}, true},
		{"svg logo", Branding{Logo: []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), LogoType: "image/svg+xml"}, true},
		{"jpeg logo", Branding{Logo: []byte("\xff\xd8\xff\xe0"), LogoType: "image/jpeg"}, true},
		{"html logo", Branding{Logo: []byte("<html>"), LogoType: "text/html"}, false},
		{"png bytes labelled jpeg", Branding{Logo: png, LogoType: "image/jpeg"}, false},
		{"logo without type", Branding{Logo: png}, false},
		{"type without logo", Branding{LogoType: "image/png"}, false},
		{"huge logo", Branding{Logo: append(png, make([]byte, MaxLogoSize)...), LogoType: "image/png"}, false},
		{"control character in name", Branding{ProductName: "Acme\nCorp"}, false},
	} {
		_, err := New(c.b)
		if (err == nil) != c.ok {
			t.Errorf("%s: err %v, want ok %v", c.name, err, c.ok)
		}
	}
}

func get(t *testing.T, h http.Handler, method, target string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestThemeCarriesTheColours(t *testing.T) {
	r, err := New(Branding{PrimaryColor: "#123ABC", AccentColor: "#a1b2c3"})
	if err != nil {
		t.Fatal(err)
	}
	css := get(t, r.Static(), "GET", StaticPath+"theme.css").Body.String()
	for _, want := range []string{"--primary: #123abc;", "--accent: #a1b2c3;", "--on-primary: #ffffff;", "--link: #123abc;"} {
		if !strings.Contains(css, want) {
			t.Errorf("theme.css lacks %q:\n%s", want, css)
		}
	}
	// A light primary colour keeps its place but gets dark button text and leaves links readable.
	r, err = New(Branding{PrimaryColor: "#ffd700"})
	if err != nil {
		t.Fatal(err)
	}
	css = get(t, r.Static(), "GET", StaticPath+"theme.css").Body.String()
	for _, want := range []string{"--primary: #ffd700;", "--on-primary: #111827;", "--link: #1f2937;", "--focus: #1f2937;"} {
		if !strings.Contains(css, want) {
			t.Errorf("theme.css lacks %q:\n%s", want, css)
		}
	}
}

// wcagContrast is computed here independently of the package's own helper.
func wcagContrast(t *testing.T, a, b string) float64 {
	lum := func(c string) float64 {
		c = strings.TrimPrefix(c, "#")
		if len(c) == 3 {
			c = string([]byte{c[0], c[0], c[1], c[1], c[2], c[2]})
		}
		var l float64
		for i, weight := range []float64{0.2126, 0.7152, 0.0722} {
			v, err := strconv.ParseUint(c[2*i:2*i+2], 16, 8)
			if err != nil {
				t.Fatalf("colour %q: %v", c, err)
			}
			s := float64(v) / 255
			if s <= 0.03928 {
				s /= 12.92
			} else {
				s = math.Pow((s+0.055)/1.055, 2.4)
			}
			l += weight * s
		}
		return l
	}
	la, lb := lum(a), lum(b)
	return (math.Max(la, lb) + 0.05) / (math.Min(la, lb) + 0.05)
}

func TestDefaultColoursHaveEnoughContrast(t *testing.T) {
	r := newTestRenderer(t)
	css := get(t, r.Static(), "GET", StaticPath+"theme.css").Body.String()
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`--([a-z-]+): (#[0-9a-f]{3,6});`).FindAllStringSubmatch(css, -1) {
		vars[m[1]] = m[2]
	}
	if vars["primary"] != DefaultPrimaryColor {
		t.Errorf("default primary %q", vars["primary"])
	}
	if c := wcagContrast(t, DefaultPrimaryColor, "#ffffff"); c < 4.5 {
		t.Errorf("default primary against white: %.2f:1", c)
	}
	// Every text colour against every background it is shown on (see signet.css).
	for _, pair := range [][2]string{
		{"text", "surface"}, {"text", "bg"}, {"muted", "surface"}, {"muted", "bg"},
		{"on-primary", "primary"}, {"link", "surface"}, {"link", "bg"}, {"error", "error-bg"},
		{"notice", "notice-bg"}, {"banner-text", "banner"}, {"text", "bg"},
	} {
		fg, bg := vars[pair[0]], vars[pair[1]]
		if fg == "" || bg == "" {
			t.Fatalf("theme.css lacks --%s or --%s", pair[0], pair[1])
		}
		if c := wcagContrast(t, fg, bg); c < 4.5 {
			t.Errorf("--%s on --%s: %.2f:1, want at least 4.5:1", pair[0], pair[1], c)
		}
	}
	// Field borders and the focus ring are non-text: at least 3:1.
	for _, name := range []string{"field-border", "focus"} {
		if c := wcagContrast(t, vars[name], vars["surface"]); c < 3 {
			t.Errorf("--%s on --surface: %.2f:1, want at least 3:1", name, c)
		}
	}
	signet := get(t, r.Static(), "GET", StaticPath+"signet.css").Body.String()
	if m := regexp.MustCompile(`#[0-9a-fA-F]{3,6}\b`).FindString(signet); m != "" {
		t.Errorf("signet.css has a literal colour %s; colours belong in the theme", m)
	}
}

func TestStaticServesTheThreeAssets(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\nlogo")
	r, err := New(Branding{Logo: png, LogoType: "image/png"})
	if err != nil {
		t.Fatal(err)
	}
	h := r.Static()
	for name, ct := range map[string]string{"signet.css": "text/css; charset=utf-8", "theme.css": "text/css; charset=utf-8", "logo": "image/png"} {
		w := get(t, h, "GET", StaticPath+name)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != ct || w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d %q nosniff=%q", name, w.Code, w.Header().Get("Content-Type"), w.Header().Get("X-Content-Type-Options"))
		}
		if w.Header().Get("Cache-Control") != "no-cache" || w.Header().Get("ETag") == "" {
			t.Errorf("%s without a version: Cache-Control %q ETag %q", name, w.Header().Get("Cache-Control"), w.Header().Get("ETag"))
		}
		if name == "logo" && !bytes.Equal(w.Body.Bytes(), png) {
			t.Error("logo bytes differ")
		}
		etag := w.Header().Get("ETag")
		if w := get(t, h, "GET", StaticPath+name, "If-None-Match", etag); w.Code != http.StatusNotModified {
			t.Errorf("%s: If-None-Match: %d", name, w.Code)
		}
		if w := get(t, http.StripPrefix(StaticPath, h), "GET", StaticPath+name); w.Code != http.StatusOK {
			t.Errorf("%s behind StripPrefix: %d", name, w.Code)
		}
	}
	// The URLs in the pages carry the content hash and are cached for a year.
	w, doc := render(t, r, http.StatusOK, Error{})
	var urls []string
	for _, n := range findAll(doc, func(n *html.Node) bool { return n.Data == "link" || n.Data == "img" }) {
		if u := attrVal(n, "href") + attrVal(n, "src"); !slices.Contains(urls, u) { // the logo is also the icon
			urls = append(urls, u)
		}
	}
	if len(urls) != 3 {
		t.Fatalf("page links %d distinct assets, want 3: %v\n%s", len(urls), urls, w.Body)
	}
	for _, u := range urls {
		w := get(t, h, "GET", u)
		if !strings.HasPrefix(u, StaticPath) || w.Code != http.StatusOK || w.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("%s: %d Cache-Control %q", u, w.Code, w.Header().Get("Cache-Control"))
		}
	}
	for _, path := range []string{StaticPath, StaticPath + "other.css", StaticPath + "../ui.go", StaticPath + "mark.svg", "/elsewhere", StaticPath + "signet.css/x"} {
		if w := get(t, h, "GET", path); w.Code != http.StatusNotFound || w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d, want 404 with nosniff", path, w.Code)
		}
	}
	if w := get(t, h, "POST", StaticPath+"signet.css"); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", w.Code)
	}
	// The built-in mark is an SVG, served so that it cannot run script if opened directly.
	w = get(t, newTestRenderer(t).Static(), "GET", StaticPath+"logo")
	if w.Header().Get("Content-Type") != "image/svg+xml" || !strings.Contains(w.Header().Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("built-in logo: %q, CSP %q", w.Header().Get("Content-Type"), w.Header().Get("Content-Security-Policy"))
	}
}

func TestBannerAppearsOnEveryPage(t *testing.T) {
	r := newTestRenderer(t)
	banner := &Banner{Actor: "Alice", Subject: "Bob", Until: time.Now().UTC().Add(time.Hour).Truncate(time.Minute), ExitURL: "/ui/impersonation/exit"}
	until := banner.Until.Format("2 Jan 2006, 15:04 UTC")
	for name, p := range samplePages() {
		pv := reflect.New(reflect.TypeOf(p))
		pv.Elem().Set(reflect.ValueOf(p))
		pv.Elem().FieldByName("Common").FieldByName("Banner").Set(reflect.ValueOf(banner))
		w, doc := render(t, r, http.StatusOK, pv.Interface().(Page))
		b := findAll(doc, func(n *html.Node) bool { return attrVal(n, "class") == "banner" })
		if len(b) != 1 {
			t.Errorf("%s: %d banners", name, len(b))
			continue
		}
		var text strings.Builder
		var walk func(*html.Node)
		walk = func(n *html.Node) {
			if n.Type == html.TextNode {
				text.WriteString(n.Data)
			}
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				walk(c)
			}
		}
		walk(b[0])
		if want := "Alice is acting as Bob until " + until + " — Exit"; text.String() != want {
			t.Errorf("%s: banner %q, want %q", name, text.String(), want)
		}
		if !strings.Contains(w.Body.String(), `<a href="/ui/impersonation/exit">Exit</a>`) {
			t.Errorf("%s: no Exit link", name)
		}
	}
	for name, p := range samplePages() {
		if _, doc := render(t, r, http.StatusOK, p); len(findAll(doc, func(n *html.Node) bool { return attrVal(n, "class") == "banner" })) != 0 {
			t.Errorf("%s: banner without Common.Banner", name)
		}
	}
}

func TestHeaderShowsWhoIsSignedIn(t *testing.T) {
	r := newTestRenderer(t)
	w, _ := render(t, r, http.StatusOK, Error{Common: Common{SignedInAs: "alice", AccountURL: "/ui/account"}})
	if !strings.Contains(w.Body.String(), `Signed in as <a href="/ui/account">alice</a>`) {
		t.Error("no Signed in as link")
	}
	w, _ = render(t, r, http.StatusOK, Error{})
	if strings.Contains(w.Body.String(), "Signed in as") {
		t.Error("Signed in as without a session")
	}
}

func TestTemplateErrorWritesAPlain500(t *testing.T) {
	fsys := fstest.MapFS{}
	for _, name := range append([]string{"layout.html"}, fileNames()...) {
		b, err := templateFS.ReadFile("templates/" + name)
		if err != nil {
			t.Fatal(err)
		}
		fsys["templates/"+name] = &fstest.MapFile{Data: b}
	}
	// Fails after the layout has written most of the page: index out of range.
	fsys["templates/login.html"] = &fstest.MapFile{Data: []byte(`{{define "content"}}<h1>half</h1>{{index .P.Hidden 5}}{{end}}`)}
	r, err := newRenderer(Branding{}, fsys)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	r.ErrorLog = slogTo(&logged)
	w, doc := render(t, r, http.StatusOK, Login{Common: common("")})
	if w.Code != http.StatusInternalServerError || strings.Contains(w.Body.String(), "half") || strings.Contains(w.Body.String(), "signet.css") {
		t.Errorf("status %d, body:\n%s", w.Code, w.Body)
	}
	if len(findAll(doc, tag("h1"))) != 1 || w.Header().Get("X-Frame-Options") != "DENY" || w.Header().Get("Cache-Control") != "no-store" {
		t.Error("the 500 page lacks its heading or the security headers")
	}
	if !strings.Contains(logged.String(), "index out of range") {
		t.Errorf("error not logged: %q", logged.String())
	}
	// Other pages of the same renderer still work.
	if w, _ := render(t, r, http.StatusOK, Error{}); w.Code != http.StatusOK {
		t.Errorf("Error page: %d", w.Code)
	}
}

func TestNilPagesAreA500(t *testing.T) {
	r := newTestRenderer(t)
	r.ErrorLog = slogTo(&bytes.Buffer{})
	for _, p := range []Page{nil, (*Login)(nil)} {
		if w, _ := render(t, r, http.StatusOK, p); w.Code != http.StatusInternalServerError {
			t.Errorf("%T: %d", p, w.Code)
		}
	}
}

func TestPointerPagesRenderLikeValues(t *testing.T) {
	r := newTestRenderer(t)
	p := samplePages()["Login"].(Login)
	a, _ := render(t, r, http.StatusOK, p)
	b, _ := render(t, r, http.StatusOK, &p)
	if a.Code != 200 || a.Body.String() != b.Body.String() {
		t.Error("a pointer to a page renders differently")
	}
}

func TestDefaultTitles(t *testing.T) {
	r := newTestRenderer(t)
	for _, c := range []struct {
		p    Page
		want string
	}{
		{Login{}, "Sign in"},
		{LogoutConfirm{}, "Sign out of Signet?"},
		{LoggedOut{}, "You have signed out"},
		{ChangePassword{Forced: true}, "Choose a new password"},
		{Error{Common: Common{Title: "Custom"}}, "Custom"},
	} {
		p, want := c.p, c.want
		_, doc := render(t, r, http.StatusOK, p)
		h1 := findAll(doc, tag("h1"))
		if len(h1) != 1 || h1[0].FirstChild == nil || h1[0].FirstChild.Data != want {
			t.Errorf("%T: h1 is not %q", p, want)
		}
		title := findAll(doc, tag("title"))
		if len(title) != 1 || title[0].FirstChild.Data != want+" · Signet" {
			t.Errorf("%T: title is not %q", p, want+" · Signet")
		}
	}
}

func TestAccountShowsTimesInUTCAndSessions(t *testing.T) {
	r := newTestRenderer(t)
	w, doc := render(t, r, http.StatusOK, samplePages()["Account"])
	body := w.Body.String()
	for _, want := range []string{
		`<time datetime="2026-11-29T14:05:00Z">29 Nov 2026, 14:05 UTC</time>`,
		`<time datetime="2026-11-29T14:30:00Z">29 Nov 2026, 14:30 UTC</time>`, // 15:30 CET
		"with password, authenticator code",
		`<span class="badge">This device</span>`,
		"Signed out 2 other sessions",
		"8 recovery codes left",
		"(ended by bob)",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("account page lacks %q", want)
		}
	}
	sessions := map[string]bool{}
	for _, in := range findAll(doc, func(n *html.Node) bool { return n.Data == "input" && attrVal(n, "name") == "session" }) {
		sessions[attrVal(in, "value")] = true
	}
	if want := map[string]bool{"s2": true, "others": true}; !reflect.DeepEqual(sessions, want) {
		t.Errorf("session forms %v, want %v (never the current one)", sessions, want)
	}
	a := samplePages()["Account"].(Account)
	a.Acts, a.RemoveTOTPAction = nil, ""
	w, _ = render(t, r, http.StatusOK, a)
	if !strings.Contains(w.Body.String(), "Nobody has acted as you.") || strings.Contains(w.Body.String(), "Remove authenticator app") {
		t.Error("empty acts or hidden remove button wrong")
	}
}

func TestConsentOffersAllowAndDeny(t *testing.T) {
	r := newTestRenderer(t)
	_, doc := render(t, r, http.StatusOK, samplePages()["Consent"])
	var got []string
	for _, b := range findAll(doc, tag("button")) {
		got = append(got, attrVal(b, "name")+"="+attrVal(b, "value"))
	}
	if want := []string{"decision=allow", "decision=deny"}; !reflect.DeepEqual(got, want) {
		t.Errorf("buttons %v, want %v", got, want)
	}
}

func TestDeviceName(t *testing.T) {
	for _, c := range []struct{ ua, want string }{
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on Linux"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:132.0) Gecko/20100101 Firefox/132.0", "Firefox on macOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "Safari on iPhone"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge on Windows"},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", "Chrome on Android"},
		{"Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0 Mobile/15E148 Safari/604.1", "Chrome on iPad"},
		{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on ChromeOS"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/114.0.0.0", "Opera on Windows"},
		{"curl/8.5.0", "curl"},
		{"Wget/1.21.4", "Wget"},
		{"Mozilla/5.0 (X11; Linux x86_64)", "Browser on Linux"},
		{"", "Unknown device"},
		{"   ", "Unknown device"},
		{"<script>alert(1)</script>", "Unknown device"},
	} {
		if got := DeviceName(c.ua); got != c.want {
			t.Errorf("DeviceName(%q) = %q, want %q", c.ua, got, c.want)
		}
	}
}

func fileNames() []string {
	var out []string
	for _, p := range pageFiles {
		out = append(out, p.file)
	}
	return out
}

func TestAssetURLsChangeWithTheirContent(t *testing.T) {
	urls := func(b Branding) map[string]string {
		r, err := New(b)
		if err != nil {
			t.Fatal(err)
		}
		_, doc := render(t, r, http.StatusOK, Error{})
		out := map[string]string{}
		for _, n := range findAll(doc, func(n *html.Node) bool { return n.Data == "link" || n.Data == "img" }) {
			u := attrVal(n, "href") + attrVal(n, "src")
			name, _, _ := strings.Cut(strings.TrimPrefix(u, StaticPath), "?")
			out[name] = u
		}
		return out
	}
	a := urls(Branding{})
	b := urls(Branding{PrimaryColor: "#123abc", Logo: []byte("\x89PNG\r\n\x1a\n"), LogoType: "image/png"})
	if a["signet.css"] == "" || a["signet.css"] != b["signet.css"] {
		t.Errorf("signet.css URLs %q and %q, want equal", a["signet.css"], b["signet.css"])
	}
	for _, name := range []string{"theme.css", "logo"} {
		if a[name] == "" || a[name] == b[name] {
			t.Errorf("%s URL %q did not change with its content", name, a[name])
		}
	}
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// TestMethodNames: a session's methods read as words, without repeating "mfa" beside the factors
// that make it.
func TestMethodNames(t *testing.T) {
	for _, tc := range []struct {
		amr  []string
		want string
	}{
		{[]string{"pwd"}, "password"},
		{[]string{"pwd", "otp", "mfa"}, "password, authenticator code"},
		{[]string{"pwd", "kba", "mfa"}, "password, recovery code"},
		{[]string{"pwd", "x-new"}, "password, x-new"},
	} {
		if got := methodNames(tc.amr); got != tc.want {
			t.Errorf("methodNames(%v) = %q, want %q", tc.amr, got, tc.want)
		}
	}
}

package testenv

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// Browser is a cookie-keeping HTTP client that uses the hosted pages as a person without
// JavaScript would: it follows redirects on the issuer, stops at a redirect anywhere else (a
// client's redirect URI: the test reads the code there) and submits the forms pages show.
type Browser struct {
	T      testing.TB
	HTTP   *http.Client
	Origin string // the issuer's origin: redirects elsewhere are not followed (see Follow)
	follow []string
}

// Page is a response the browser received.
type Page struct {
	Status int
	URL    *url.URL
	Header http.Header
	Body   string
	Forms  []Form
	// Location is where a redirect that left the issuer pointed (nil when the page is not one).
	Location *url.URL
}

// Form is an HTML form of a page, with the values its inputs carry (hidden fields included).
type Form struct {
	Action  string
	Method  string
	Values  url.Values
	Buttons []url.Values // name/value of each submit button, in order
}

// NewBrowser returns a browser for e's issuer.
func (e *Env) NewBrowser() *Browser {
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(e.URL)
	b := &Browser{T: e.T, Origin: u.Scheme + "://" + u.Host}
	b.HTTP = &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if o := req.URL.Scheme + "://" + req.URL.Host; o != b.Origin && !slices.Contains(b.follow, o) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return b
}

// Follow makes the browser follow redirects to origin as well: a relying party's own server, whose
// login and callback handlers (and cookies) then take part in the flow as in a real browser.
func (b *Browser) Follow(origin string) { b.follow = append(b.follow, origin) }

// Open GETs a URL (absolute, or a path on the issuer).
func (b *Browser) Open(rawURL string) *Page {
	b.T.Helper()
	req, err := http.NewRequest(http.MethodGet, b.abs(rawURL), nil)
	if err != nil {
		b.T.Fatal(err)
	}
	return b.do(req)
}

// Submit posts a page's form (the one whose action contains action, or the only one) with its
// values, fields changed or added as given, and the named button's value when button is not "".
func (b *Browser) Submit(p *Page, action string, fields map[string]string) *Page {
	b.T.Helper()
	f := p.Form(b.T, action)
	v := url.Values{}
	for k, vs := range f.Values {
		v[k] = append([]string(nil), vs...)
	}
	for k, val := range fields {
		v.Set(k, val)
	}
	return b.Post(f.Action, v)
}

// Post posts a form body to a URL resolved against the issuer.
func (b *Browser) Post(rawURL string, v url.Values) *Page {
	b.T.Helper()
	req, err := http.NewRequest(http.MethodPost, b.abs(rawURL), strings.NewReader(v.Encode()))
	if err != nil {
		b.T.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func (b *Browser) abs(raw string) string {
	if strings.HasPrefix(raw, "/") {
		return b.Origin + raw
	}
	return raw
}

func (b *Browser) do(req *http.Request) *Page {
	b.T.Helper()
	resp, err := b.HTTP.Do(req)
	if err != nil {
		b.T.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.T.Fatal(err)
	}
	p := &Page{Status: resp.StatusCode, URL: resp.Request.URL, Header: resp.Header, Body: string(body)}
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
		p.Location, _ = resp.Request.URL.Parse(loc)
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		p.Forms = parseForms(string(body), resp.Request.URL)
	}
	return p
}

// Form returns the page's form whose action contains action ("" : the only form).
func (p *Page) Form(t testing.TB, action string) Form {
	t.Helper()
	var found []Form
	for _, f := range p.Forms {
		if action == "" || strings.Contains(f.Action, action) {
			found = append(found, f)
		}
	}
	if len(found) != 1 {
		t.Fatalf("page %s (status %d): want one form with action %q, found %d\n%s", p.URL, p.Status, action, len(found), p.Text())
	}
	return found[0]
}

// HasForm reports whether the page has a form whose action contains action.
func (p *Page) HasForm(action string) bool {
	for _, f := range p.Forms {
		if strings.Contains(f.Action, action) {
			return true
		}
	}
	return false
}

// Text is the page's visible text, whitespace collapsed (for failure messages and assertions).
func (p *Page) Text() string {
	doc, err := html.Parse(strings.NewReader(p.Body))
	if err != nil {
		return p.Body
	}
	var sb strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && (n.Data == "script" || n.Data == "style" || n.Data == "head") {
			return
		}
		if n.Type == html.TextNode {
			sb.WriteString(n.Data)
			sb.WriteByte(' ')
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return strings.Join(strings.Fields(sb.String()), " ")
}

func attr(n *html.Node, name string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val, true
		}
	}
	return "", false
}

// parseForms reads every form of a page with its inputs' values.
func parseForms(body string, base *url.URL) []Form {
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		return nil
	}
	var forms []Form
	var inForm func(n *html.Node, f *Form)
	inForm = func(n *html.Node, f *Form) {
		if n.Type == html.ElementNode {
			name, _ := attr(n, "name")
			value, _ := attr(n, "value")
			typ, _ := attr(n, "type")
			switch {
			case n.Data == "button" || n.Data == "input" && typ == "submit":
				if name != "" {
					f.Buttons = append(f.Buttons, url.Values{name: {value}})
				}
			case n.Data == "input" && name != "" && typ != "checkbox" && typ != "radio":
				f.Values.Add(name, value)
			case n.Data == "textarea" && name != "":
				f.Values.Add(name, "")
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			inForm(c, f)
		}
	}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "form" {
			action, _ := attr(n, "action")
			method, _ := attr(n, "method")
			if u, err := base.Parse(action); err == nil {
				action = u.String()
			}
			f := Form{Action: action, Method: strings.ToUpper(method), Values: url.Values{}}
			inForm(n, &f)
			forms = append(forms, f)
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return forms
}

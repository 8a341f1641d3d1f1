// Package ui renders Signet's hosted pages (sign-in, second factor, consent, account, sign-out) and serves
// their static assets. It owns the HTML, the CSS, the operator's branding and the security headers every
// page sends; it must not read requests, sessions or the store: handlers decide, ui only draws.
package ui

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"unicode"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/signet.css static/mark.svg
var staticFS embed.FS

// StaticPath is where the renderer's assets are served: StaticPath+"signet.css", StaticPath+"theme.css"
// (the colours as CSS custom properties, generated from Branding) and StaticPath+"logo".
const StaticPath = "/ui/static/"

// Branding is what an operator may change. Colours are CSS hex (#rgb or #rrggbb) and nothing else,
// because they end up in CSS.
type Branding struct {
	ProductName  string // default "Signet"
	Logo         []byte // an image file's bytes; nil: a built-in neutral mark
	LogoType     string // image/svg+xml, image/png or image/jpeg
	PrimaryColor string // default a calm blue with at least 4.5:1 contrast against white text
	AccentColor  string // optional; the focus ring and the card's top edge; default PrimaryColor
}

// DefaultPrimaryColor is the primary colour when Branding leaves it empty (6.2:1 against white).
const DefaultPrimaryColor = "#2f5fb3"

// MaxLogoSize is the largest logo New accepts.
const MaxLogoSize = 512 << 10

// Renderer draws the hosted pages. It is safe for concurrent use.
type Renderer struct {
	// ErrorLog receives template execution errors; nil: slog.Default().
	ErrorLog *slog.Logger

	product    string
	pages      map[reflect.Type]*template.Template
	assets     map[string]asset
	customLogo bool
}

type asset struct {
	body        []byte
	contentType string
	hash        string
}

// url is the asset's address with its content hash, so that it can be cached for a year.
func (a asset) url(name string) string { return StaticPath + name + "?v=" + a.hash }

var hexColor = regexp.MustCompile(`^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// New validates the branding and parses the templates once.
func New(b Branding) (*Renderer, error) {
	return newRenderer(b, templateFS)
}

// newRenderer takes the template files as a parameter so that tests can hand it a broken set.
func newRenderer(b Branding, templates fs.FS) (*Renderer, error) {
	b, err := b.normalise()
	if err != nil {
		return nil, err
	}
	css, err := staticFS.ReadFile("static/signet.css")
	if err != nil {
		return nil, err
	}
	logo, logoType := b.Logo, b.LogoType
	if logo == nil {
		if logo, err = staticFS.ReadFile("static/mark.svg"); err != nil {
			return nil, err
		}
		logoType = "image/svg+xml"
	}
	r := &Renderer{
		product:    b.ProductName,
		customLogo: b.Logo != nil,
		assets: map[string]asset{
			"signet.css": newAsset(css, "text/css; charset=utf-8"),
			"theme.css":  newAsset(themeCSS(b), "text/css; charset=utf-8"),
			"logo":       newAsset(logo, logoType),
		},
		pages: map[reflect.Type]*template.Template{},
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templates, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("ui: layout: %w", err)
	}
	for _, p := range pageFiles {
		t, err := base.Clone()
		if err == nil {
			t, err = t.ParseFS(templates, "templates/"+p.file)
		}
		if err != nil {
			return nil, fmt.Errorf("ui: %s: %w", p.file, err)
		}
		r.pages[reflect.TypeOf(p.page)] = t
	}
	return r, nil
}

func newAsset(body []byte, contentType string) asset {
	sum := sha256.Sum256(body)
	return asset{body: body, contentType: contentType, hash: hex.EncodeToString(sum[:8])}
}

func (b Branding) normalise() (Branding, error) {
	b.ProductName = strings.TrimSpace(b.ProductName)
	if b.ProductName == "" {
		b.ProductName = "Signet"
	}
	if len(b.ProductName) > 80 || strings.IndexFunc(b.ProductName, unicode.IsControl) >= 0 {
		return b, errors.New("ui: product name must be at most 80 characters without control characters")
	}
	if b.PrimaryColor == "" {
		b.PrimaryColor = DefaultPrimaryColor
	}
	if !hexColor.MatchString(b.PrimaryColor) {
		return b, fmt.Errorf("ui: primary colour %q is not #rgb or #rrggbb", b.PrimaryColor)
	}
	if b.AccentColor != "" && !hexColor.MatchString(b.AccentColor) {
		return b, fmt.Errorf("ui: accent colour %q is not #rgb or #rrggbb", b.AccentColor)
	}
	b.PrimaryColor = strings.ToLower(b.PrimaryColor)
	b.AccentColor = strings.ToLower(b.AccentColor)
	if b.Logo == nil {
		if b.LogoType != "" {
			return b, errors.New("ui: logo type given without a logo")
		}
		return b, nil
	}
	if len(b.Logo) == 0 || len(b.Logo) > MaxLogoSize {
		return b, fmt.Errorf("ui: logo must be 1 byte to %d KiB", MaxLogoSize>>10)
	}
	// The bytes must be what the type says: the logo is served with nosniff from Signet's own origin.
	switch b.LogoType {
	case "image/png":
		if !bytes.HasPrefix(b.Logo, []byte("\x89PNG\r\n\x1a\n")) {
			return b, errors.New("ui: logo is not a PNG file")
		}
	case "image/jpeg":
		if !bytes.HasPrefix(b.Logo, []byte("\xff\xd8\xff")) {
			return b, errors.New("ui: logo is not a JPEG file")
		}
	case "image/svg+xml":
		if !bytes.Contains(b.Logo, []byte("<svg")) {
			return b, errors.New("ui: logo is not an SVG file")
		}
	default:
		return b, fmt.Errorf("ui: logo type %q is not image/svg+xml, image/png or image/jpeg", b.LogoType)
	}
	return b, nil
}

// Render writes the page with status and the security headers every hosted page sends. The page is
// executed into a buffer first, so a template error writes a plain 500 page instead of half a page.
func (r *Renderer) Render(w http.ResponseWriter, status int, p Page) {
	body, nonce, targets, err := r.execute(p)
	if err != nil {
		log := r.ErrorLog
		if log == nil {
			log = slog.Default()
		}
		log.Error("ui: rendering a page", "page", fmt.Sprintf("%T", p), "err", err)
		setPageHeaders(w.Header(), "", nil)
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(plainErrorPage))
		return
	}
	if status == 0 {
		status = http.StatusOK
	}
	setPageHeaders(w.Header(), nonce, targets)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

const plainErrorPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Something went wrong</title></head>
<body><main><h1>Something went wrong</h1><p>This page could not be shown. Please try again in a moment.</p></main></body></html>
`

// view is what the layout and the page templates see.
type view struct {
	P          any     // the page struct (a value, never a pointer)
	C          *Common // the page's Common
	Title      string  // C.Title or the page's default title
	Product    string
	CustomLogo bool
	CSSURL     string
	ThemeURL   string
	LogoURL    string
	Nonce      string       // only on FormPost
	Action     template.URL // FormPost's action, checked by appURL
	Wide       bool         // the account page's wider card
}

func (r *Renderer) execute(p Page) (body []byte, nonce string, targets []string, err error) {
	if p == nil {
		return nil, "", nil, errors.New("nil page")
	}
	v := reflect.ValueOf(p)
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil, "", nil, fmt.Errorf("nil %T", p)
		}
		v = v.Elem()
	}
	t := r.pages[v.Type()]
	if t == nil {
		return nil, "", nil, fmt.Errorf("no template for %s", v.Type())
	}
	page := v.Interface().(Page)
	c := page.common()
	data := view{
		P: page, C: c, Title: c.Title, Product: r.product, CustomLogo: r.customLogo,
		CSSURL:   r.assets["signet.css"].url("signet.css"),
		ThemeURL: r.assets["theme.css"].url("theme.css"),
		LogoURL:  r.assets["logo"].url("logo"),
	}
	_, data.Wide = page.(Account)
	if data.Title == "" {
		data.Title = defaultTitle(page, r.product)
	}
	targets = c.FormTargets
	if fp, ok := page.(FormPost); ok {
		action, ok := appURL(fp.Action)
		if !ok || action == "" {
			return nil, "", nil, fmt.Errorf("form_post action %q refused", fp.Action)
		}
		data.Action = action
		if nonce, err = newNonce(); err != nil {
			return nil, "", nil, err
		}
		data.Nonce = nonce
		targets = append(append([]string(nil), targets...), fp.Action)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		return nil, "", nil, err
	}
	return buf.Bytes(), nonce, targets, nil
}

func newNonce() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func setPageHeaders(h http.Header, nonce string, formTargets []string) {
	csp := []string{"default-src 'none'", "style-src 'self'", "img-src 'self' data:", "base-uri 'none'", "frame-ancestors 'none'"}
	action := "form-action 'self'"
	seen := map[string]bool{}
	for _, t := range formTargets {
		if src, ok := cspSource(t); ok && !seen[src] {
			seen[src] = true
			action += " " + src
		}
	}
	csp = append(csp, action)
	if nonce != "" {
		csp = append(csp, "script-src 'nonce-"+nonce+"'")
	}
	h.Set("Content-Security-Policy", strings.Join(csp, "; "))
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "text/html; charset=utf-8")
}

var (
	schemeRE = regexp.MustCompile(`^[a-z][a-z0-9+.-]*$`)
	hostRE   = regexp.MustCompile(`^(?:[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$`)
)

// cspSource turns a form target into a CSP source expression: the origin of an http(s) URL
// ("https://app.example.com") or a bare scheme for a native app's custom scheme ("com.example.app:").
// Anything else is dropped: it would end up in a header.
func cspSource(target string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(target))
	if err != nil || u.Scheme == "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if !schemeRE.MatchString(scheme) || blockedScheme[scheme] {
		return "", false
	}
	if scheme != "http" && scheme != "https" {
		return scheme + ":", true
	}
	host := strings.ToLower(u.Host)
	if !hostRE.MatchString(host) {
		return "", false
	}
	return scheme + "://" + host, true
}

var blockedScheme = map[string]bool{"javascript": true, "data": true, "vbscript": true}

// appURL lets a client's URL through html/template, which would otherwise replace a native app's
// custom scheme (com.example.app:/cb) with "#ZgotmplZ". Script-capable schemes, relative URLs and URLs
// with control characters or spaces are refused (ok=false). An empty URL is ("", true).
func appURL(s string) (template.URL, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", true
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0 {
		return "", false
	}
	i := strings.IndexByte(s, ':')
	if i <= 0 {
		return "", false
	}
	scheme := strings.ToLower(s[:i])
	if !schemeRE.MatchString(scheme) || blockedScheme[scheme] {
		return "", false
	}
	if _, err := url.Parse(s); err != nil {
		return "", false
	}
	return template.URL(s), true
}

package browser

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

const (
	// actionTimeout bounds one browser action (a navigation, a click and the page it loads, a
	// query); testTimeout bounds a test's tabs; startTimeout bounds Chromium's start. They are
	// generous so that a loaded 2-core machine is slow rather than failing.
	actionTimeout = 30 * time.Second
	testTimeout   = 3 * time.Minute
	startTimeout  = 60 * time.Second
)

// suite is one test's provider, relying party and tabs.
type suite struct {
	t    *testing.T
	env  *testenv.Env
	rp   *relyingParty
	life context.Context // bounds every tab of the test

	mu       sync.Mutex
	problems []string // console errors and CSP violations, from every tab
	shots    int
}

// chromium finds the browser, or ends the test: a failure under CI, a skip with the reason elsewhere.
func chromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("SIGNET_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if fi, err := os.Stat(path); err != nil || fi.IsDir() {
		testenv.Unavailable(t, "Chromium is not installed at "+path+" (install it with `apt-get install -y chromium`, or set SIGNET_CHROMIUM)")
	}
	return path
}

// shared is the one Chromium process of the package: starting one takes seconds, a browser
// context (what every tab gets, so that no two share a cookie) takes milliseconds. TestMain stops it.
var shared struct {
	once sync.Once
	root context.Context
	err  error
	stop func()
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.stop != nil {
		shared.stop()
	}
	os.Exit(code)
}

func browser(t *testing.T) context.Context {
	t.Helper()
	exec := chromium(t)
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "signet-chromium-")
		if err != nil {
			shared.err = err
			return
		}
		opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
			chromedp.ExecPath(exec), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
			chromedp.UserDataDir(dir), chromedp.WindowSize(1280, 900))
		alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		root, cancelRoot := chromedp.NewContext(alloc)
		shared.stop = func() {
			cancelRoot()
			cancelAlloc()
			os.RemoveAll(dir)
		}
		// The first Run starts the browser and must carry no deadline (it would stop the browser
		// with it); a browser that does not come up still ends the test, by the start timeout.
		started := make(chan error, 1)
		go func() { started <- chromedp.Do(root) }()
		select {
		case shared.err = <-started:
		case <-time.After(startTimeout):
			shared.err = fmt.Errorf("no answer after %v", startTimeout)
		}
		if shared.err != nil {
			shared.err = fmt.Errorf("start Chromium (%s): %w", exec, shared.err)
		}
		shared.root = root
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.root
}

// start runs Signet and a relying party for the test, which uses the shared Chromium.
func start(t *testing.T, edit func(*store.Client)) *suite {
	t.Helper()
	root := browser(t)
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	life, stop := context.WithTimeout(root, testTimeout)
	t.Cleanup(stop)
	s := &suite{t: t, env: env, life: life}
	s.rp = newRelyingParty(t, env, edit)
	t.Cleanup(s.checkConsole)
	return s
}

// checkConsole fails the test for any console error or Content-Security-Policy violation a page
// reported: a blocked style sheet or script is a broken page even when the test's steps passed.
func (s *suite) checkConsole() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.problems {
		s.t.Errorf("browser console: %s", p)
	}
}

func (s *suite) report(tab string, m chromedp.ConsoleMessage) {
	if !problem(m) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problems = append(s.problems, fmt.Sprintf("[%s] %s (%s %s)", tab, m.String(), m.Source, m.URL))
}

// problem tells whether a console message means a broken page: a CSP violation, a script error, or
// a resource the page needs that did not load. A page answered with an error status on purpose
// (401 for a wrong password) is logged by Chromium as a failed load too: that one is not a problem.
func problem(m chromedp.ConsoleMessage) bool {
	if strings.Contains(m.Text, "Content Security Policy") || m.IsException() {
		return true
	}
	if m.Type != chromedp.ConsoleError {
		return false
	}
	if m.Source == "network" {
		u, err := url.Parse(m.URL)
		return err != nil || path.Ext(u.Path) != "" || strings.HasPrefix(u.Path, "/ui/static/")
	}
	return true
}

// tab is one browser tab in a browser context of its own: a separate person, or the same person on
// another device.
type tab struct {
	s       *suite
	name    string
	ctx     context.Context
	failing bool
}

// newTab opens a tab with its own cookies, width×height CSS pixels.
func (s *suite) newTab(name string, width, height int64) *tab {
	s.t.Helper()
	ctx, cancel := chromedp.NewContext(s.life, chromedp.WithNewBrowserContext())
	s.t.Cleanup(cancel)
	b := &tab{s: s, name: name, ctx: ctx}
	messages := chromedp.Console(ctx) // subscribes now: nothing a page logs is missed
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			s.report(name, m)
		}
	}()
	b.do("set the viewport", chromedp.EmulateViewport(width, height))
	return b
}

// do runs steps with a deadline, failing the test with where the tab was.
func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.s.t.Helper()
	defer b.s.trace(what, time.Now())
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail("%s: %s: %v (page %s)", b.name, what, err, b.url())
	}
}

// get runs one action that returns a value, with a deadline.
func get[T any](b *tab, what string, a chromedp.Action[T]) T {
	b.s.t.Helper()
	defer b.s.trace(what, time.Now())
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.fail("%s: %s: %v (page %s)", b.name, what, err, b.url())
	}
	return v
}

// fail ends the test, with a screenshot of the page as it was when SIGNET_SCREENSHOTS is set.
func (b *tab) fail(format string, args ...any) {
	b.s.t.Helper()
	if dir := os.Getenv("SIGNET_SCREENSHOTS"); dir != "" && !b.failing {
		b.failing = true
		ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
		defer cancel()
		if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			os.MkdirAll(dir, 0o755)
			os.WriteFile(filepath.Join(dir, strings.ReplaceAll(b.s.t.Name(), "/", "_")+"-failure-"+b.name+".png"), png, 0o644)
		}
	}
	b.s.t.Fatalf(format, args...)
}

// url is where the tab is (for messages; empty when the browser does not answer).
func (b *tab) url() string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	u, _ := chromedp.Run(ctx, chromedp.Location())
	return u
}

// open navigates and waits for the page (after any redirects) to load.
func (b *tab) open(rawURL string) {
	b.s.t.Helper()
	get(b, "open "+rawURL, chromedp.NavigateResponse(rawURL))
}

// press clicks a button or link and waits for the page it leads to.
func (b *tab) press(sel string) *network.Response {
	b.s.t.Helper()
	defer b.s.trace("press "+sel, time.Now())
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		b.fail("%s: press %s: %v (page %s)", b.name, sel, err, b.url())
	}
	return resp
}

// typeInto types text into a field as a person would (key events).
func (b *tab) typeInto(sel, text string) {
	b.s.t.Helper()
	b.do("type into "+sel, chromedp.SendKeys(chromedp.CSS(sel), text, chromedp.NodeVisible))
}

// text is the visible text of the first element sel matches, waiting for it to be visible.
func (b *tab) text(sel string) string {
	b.s.t.Helper()
	return strings.TrimSpace(get(b, "read "+sel, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible)))
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](b *tab, expr string) T {
	b.s.t.Helper()
	return get(b, "evaluate "+expr, chromedp.Evaluate[T](expr))
}

// at fails unless the tab's URL starts with prefix.
func (b *tab) at(prefix string) {
	b.s.t.Helper()
	if u := b.url(); !strings.HasPrefix(u, prefix) {
		b.s.t.Fatalf("%s: at %s, want %s…; the page says: %s", b.name, u, prefix, eval[string](b, "document.body.innerText"))
	}
}

// sees fails unless the page shows text (in its visible text, not just its markup).
func (b *tab) sees(text string) {
	b.s.t.Helper()
	if body := eval[string](b, "document.body.innerText"); !strings.Contains(body, text) {
		b.s.t.Fatalf("%s: page %s does not show %q; it shows:\n%s", b.name, b.url(), text, body)
	}
}

// fitsWidth fails when the page scrolls sideways: nothing may be wider than the viewport.
func (b *tab) fitsWidth() {
	b.s.t.Helper()
	if w := eval[[]int](b, "[document.documentElement.scrollWidth, window.innerWidth]"); w[0] > w[1] {
		b.s.t.Errorf("%s: page %s is %d px wide in a %d px viewport", b.name, b.url(), w[0], w[1])
	}
}

// cookies returns the browser's cookies for the issuer.
func (b *tab) cookies() []*network.Cookie {
	b.s.t.Helper()
	res := get(b, "read cookies", func(ctx context.Context, t *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{b.s.env.URL + "/"}})
	})
	return res.Cookies
}

// noScript turns JavaScript off in the tab.
func (b *tab) noScript() {
	b.s.t.Helper()
	b.do("disable JavaScript", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	}))
}

// shot saves a full-page PNG of the tab into $SIGNET_SCREENSHOTS as <test>-<n>-<name>.png.
func (b *tab) shot(name string) {
	b.s.t.Helper()
	dir := os.Getenv("SIGNET_SCREENSHOTS")
	if dir == "" {
		return
	}
	png := get(b, "screenshot "+name, chromedp.FullScreenshot(100))
	b.s.mu.Lock()
	b.s.shots++
	n := b.s.shots
	b.s.mu.Unlock()
	file := filepath.Join(dir, fmt.Sprintf("%s-%02d-%s.png", strings.ReplaceAll(b.s.t.Name(), "/", "_"), n, name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.s.t.Fatal(err)
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		b.s.t.Fatal(err)
	}
}

// relyingParty is a client's redirect URI on loopback: it shows "callback ok" and what it was sent
// (query or posted form), and nothing else.
type relyingParty struct {
	srv    *httptest.Server
	client testenv.Client
	conf   *oauth2.Config
}

func newRelyingParty(t *testing.T, env *testenv.Env, edit func(*store.Client)) *relyingParty {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		var b strings.Builder
		fmt.Fprintf(&b, "<!doctype html><html lang=en><head><meta charset=utf-8><title>Relying party</title></head><body>\n")
		fmt.Fprintf(&b, "<h1 id=callback-ok>callback ok</h1>\n<p>method <span id=method>%s</span> path <span id=path>%s</span></p>\n<dl>\n",
			r.Method, html.EscapeString(r.URL.Path))
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range r.Form {
				if !yield(k) {
					return
				}
			}
		}) {
			fmt.Fprintf(&b, "<dt>%s</dt><dd id=%q>%s</dd>\n", html.EscapeString(k), "p-"+k, html.EscapeString(r.Form.Get(k)))
		}
		b.WriteString("</dl></body></html>\n")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(b.String()))
	}))
	t.Cleanup(srv.Close)
	c := store.Client{Name: "Example App", Type: store.ClientWeb, AuthMethod: store.AuthSecretBasic, RedirectURIs: []string{srv.URL + "/callback"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, PostLogoutRedirectURIs: []string{srv.URL + "/bye"}}
	if edit != nil {
		edit(&c)
	}
	cl := env.CreateClient(c)
	return &relyingParty{srv: srv, client: cl, conf: &oauth2.Config{ClientID: cl.ID, ClientSecret: cl.Secret,
		Endpoint:    oauth2.Endpoint{AuthURL: env.URL + "/oauth/v2/authorize", TokenURL: env.URL + "/oauth/v2/token", AuthStyle: oauth2.AuthStyleInHeader},
		RedirectURL: srv.URL + "/callback", Scopes: []string{"openid", "profile", "email"}}}
}

// authorization is one authorization request a test sends the browser to.
type authorization struct {
	URL, State, Verifier string
}

func (r *relyingParty) authorize(opts ...oauth2.AuthCodeOption) authorization {
	b := make([]byte, 8)
	rand.Read(b)
	a := authorization{State: "st-" + hex.EncodeToString(b), Verifier: oauth2.GenerateVerifier()}
	a.URL = r.conf.AuthCodeURL(a.State, append(opts, oauth2.S256ChallengeOption(a.Verifier))...)
	return a
}

// param reads a parameter the relying party's page shows ("" when absent).
func (b *tab) param(name string) string {
	b.s.t.Helper()
	return eval[string](b, fmt.Sprintf(`(document.getElementById(%q) || {innerText: ""}).innerText`, "p-"+name))
}

// callback asserts the tab is on the relying party's page with a code for a and exchanges it.
func (s *suite) callback(b *tab, a authorization) *oauth2.Token {
	s.t.Helper()
	b.do("wait for the relying party", chromedp.WaitVisible(chromedp.CSS("#callback-ok")))
	b.at(s.rp.srv.URL + "/callback")
	if got := b.param("state"); got != a.State {
		s.t.Fatalf("callback state %q, want %q", got, a.State)
	}
	code := b.param("code")
	if code == "" {
		s.t.Fatalf("callback without a code: error %q %q", b.param("error"), b.param("error_description"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), actionTimeout)
	defer cancel()
	tok, err := s.rp.conf.Exchange(ctx, code, oauth2.VerifierOption(a.Verifier))
	if err != nil {
		s.t.Fatalf("exchange the code: %v", err)
	}
	return tok
}

// signIn fills in and sends the login page the tab shows.
func (b *tab) signIn(username, password string) {
	b.s.t.Helper()
	b.do("wait for the login form", chromedp.WaitVisible(chromedp.CSS("#username")))
	b.do("clear the username", chromedp.Clear(chromedp.CSS("#username")))
	b.typeInto("#username", username)
	b.typeInto("#password", password)
	b.press(`form button[type="submit"]`)
}

func waitVisible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}

func valueOf(sel string) chromedp.Action[string] {
	return chromedp.Value(chromedp.CSS(sel))
}

// firstTabbable is the id (or tag) of the first element Tab reaches on the page.
const firstTabbable = `(() => {
	const el = [...document.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')]
		.find(e => e.tabIndex >= 0 && !e.disabled && e.type !== 'hidden' && e.offsetParent !== null);
	return el ? (el.id || el.tagName) : '';
})()`

func cookieNames(cs []*network.Cookie) []string {
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	return names
}

func hashPassword(p string) string { return secrets.HashPassword(p) }

// trace logs how long a browser action took when SIGNET_BROWSER_TRACE is set.
func (s *suite) trace(what string, t0 time.Time) {
	if os.Getenv("SIGNET_BROWSER_TRACE") != "" {
		s.t.Logf("%v %s", time.Since(t0).Round(time.Millisecond), what)
	}
}

package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/html"
)

// The sign-in scenarios are driven from Go, not wrk: each iteration is a conversation (a cookie
// jar, a login page to parse, a code to exchange, a refresh token to carry to the next request)
// that wrk's per-thread Lua cannot hold per connection. Their figures are therefore not divided by
// the wrk baseline; introspect-during-signin divides two wrk measurements of introspection.

// callbackURI is the web client's redirect URI: never reached, the driver stops at the redirect.
const callbackURI = "http://127.0.0.1:9/callback"

// signinPassword is every bench user's password.
const signinPassword = "bench correct horse battery"

// errThrottled marks a 429 at the login form: the scenario only signs in correctly, so one means
// the failed sign-in throttle counted something it must not.
var errThrottled = errors.New("the login form answered 429 (failed sign-in throttling) to a correct password")

// errShed marks a 503 at the login form: the password check waited 5 s for one of the capped
// argon2id slots and gave up (Signet sheds sign-ins it cannot hash in time).
var errShed = errors.New("the login form answered 503: no argon2id slot within 5 s")

// signinSetup creates, once, the web client and the users the sign-in scenarios use.
func (e *benchEnv) signinSetup(ctx context.Context) error {
	e.signinOnce.Do(func() { e.signinErr = e.createSignin(ctx) })
	return e.signinErr
}

func (e *benchEnv) createSignin(ctx context.Context) error {
	if err := e.cli(ctx, &e.web, "client", "create", "--name", "bench-web", "--type", "web", "--redirect-uri", callbackURI,
		"--grant", "authorization_code", "--grant", "refresh_token"); err != nil {
		return err
	}
	// Each `user create` hashes with argon2id (tens of ms) in a process of its own: a few at a time.
	e.users = make([]string, e.signinUsers)
	errs := make([]error, e.signinUsers)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range e.users {
		e.users[i] = fmt.Sprintf("bench-signin-%03d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var u struct {
				ID string `json:"id"`
			}
			errs[i] = e.cli(ctx, &u, "user", "create", "--username", e.users[i], "--password", signinPassword)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// signedIn is what one sign-in ends with.
type signedIn struct {
	refreshToken string
	steps        [3]time.Duration // authorize → login page, password → code, code → tokens
}

// signInOnce signs user in through base the way a browser without JavaScript and a web client
// would: a fresh cookie jar, GET /oauth/v2/authorize with PKCE, state and nonce, the login form
// posted with its hidden fields, the redirect's code exchanged with the verifier (HTTP Basic). It
// checks the state, the issuer and the ID token's nonce and audience.
func (e *benchEnv) signInOnce(ctx context.Context, tr http.RoundTripper, base, user, password string) (signedIn, error) {
	var out signedIn
	jar, _ := cookiejar.New(nil)
	baseURL, _ := url.Parse(base)
	hc := &http.Client{Transport: tr, Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host != baseURL.Host || len(via) > 10 {
				return http.ErrUseLastResponse // the client's redirect URI: stop there
			}
			return nil
		}}
	verifier, state, nonce := randomString(32), randomString(16), randomString(16)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {e.web.ID}, "redirect_uri": {callbackURI},
		"scope": {"openid profile offline_access"}, "state": {state}, "nonce": {nonce},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}

	t0 := time.Now()
	page, pageURL, status, err := fetch(ctx, hc, http.MethodGet, base+"/oauth/v2/authorize?"+q.Encode(), nil)
	if err != nil {
		return out, err
	}
	form, ok := findForm(page, pageURL, "/ui/login/password")
	if status != http.StatusOK || !ok {
		return out, fmt.Errorf("authorize: no login form (status %d at %s)", status, pageURL)
	}
	form.Set("username", user)
	form.Set("password", password)
	t1 := time.Now()
	resp, err := do(ctx, hc, http.MethodPost, form.action, form.values)
	if err != nil {
		return out, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		return out, errThrottled
	case http.StatusServiceUnavailable:
		return out, errShed
	}
	loc, _ := resp.Location()
	if resp.StatusCode/100 != 3 || loc == nil || !strings.HasPrefix(loc.String(), callbackURI) {
		return out, fmt.Errorf("login form: answered %d at %s, not a redirect to the client", resp.StatusCode, resp.Request.URL)
	}
	back := loc.Query()
	if back.Get("state") != state || back.Get("iss") == "" || back.Get("code") == "" {
		return out, fmt.Errorf("redirect to the client lacks the code, the state or the issuer: %s", loc.RawQuery)
	}
	t2 := time.Now()
	tok, err := tokenCall(ctx, tr, base, e.web, url.Values{"grant_type": {"authorization_code"}, "code": {back.Get("code")},
		"redirect_uri": {callbackURI}, "code_verifier": {verifier}})
	if err != nil {
		return out, err
	}
	if err := checkIDToken(tok.IDToken, e.web.ID, nonce); err != nil {
		return out, err
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		return out, errors.New("the code exchange gave no access token or no refresh token (offline_access)")
	}
	out.refreshToken = tok.RefreshToken
	out.steps = [3]time.Duration{t1.Sub(t0), t2.Sub(t1), time.Since(t2)}
	return out, nil
}

// refreshOnce rotates a refresh token and checks what came back: a new access token, a new refresh
// token, an ID token for the client.
func (e *benchEnv) refreshOnce(ctx context.Context, tr http.RoundTripper, base, refresh string) (string, error) {
	tok, err := tokenCall(ctx, tr, base, e.web, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})
	if err != nil {
		return "", err
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.RefreshToken == refresh {
		return "", errors.New("refresh did not rotate: no new refresh token or no access token")
	}
	if err := checkIDToken(tok.IDToken, e.web.ID, ""); err != nil {
		return "", fmt.Errorf("refresh: %w", err)
	}
	return tok.RefreshToken, nil
}

type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
}

func tokenCall(ctx context.Context, tr http.RoundTripper, base string, c client, form url.Values) (tokenAnswer, error) {
	var tok tokenAnswer
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/oauth/v2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return tok, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", basicAuth(c.ID, c.Secret))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return tok, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return tok, fmt.Errorf("token endpoint (%s) answered %d: %s", form.Get("grant_type"), resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return tok, json.Unmarshal(b, &tok)
}

// checkIDToken reads (without verifying the signature: the relying-party tests do that) an ID
// token's claims and checks it is about a user, for the client, with the nonce when one was sent.
func checkIDToken(raw, clientID, nonce string) error {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return errors.New("no ID token in the token answer")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("ID token payload: %w", err)
	}
	var c struct {
		Sub   string `json:"sub"`
		Aud   any    `json:"aud"`
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return fmt.Errorf("ID token payload: %w", err)
	}
	aud := fmt.Sprint(c.Aud)
	if c.Sub == "" || !strings.Contains(aud, clientID) || (nonce != "" && c.Nonce != nonce) {
		return fmt.Errorf("ID token claims sub %q aud %v nonce %q: want a subject, aud %s, nonce %q", c.Sub, c.Aud, c.Nonce, clientID, nonce)
	}
	return nil
}

func do(ctx context.Context, hc *http.Client, method, target string, form url.Values) (*http.Response, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return hc.Do(req)
}

// fetch does a request, following redirects on the issuer, and returns the final page.
func fetch(ctx context.Context, hc *http.Client, method, target string, form url.Values) (string, *url.URL, int, error) {
	resp, err := do(ctx, hc, method, target, form)
	if err != nil {
		return "", nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return string(b), resp.Request.URL, resp.StatusCode, err
}

// htmlForm is a parsed form: its absolute action and its named inputs' values.
type htmlForm struct {
	action string
	values url.Values
}

func (f htmlForm) Set(k, v string) { f.values.Set(k, v) }

// findForm finds the form whose action contains action and collects its inputs (hidden ones carry
// the login request's id and the CSRF token).
func findForm(page string, base *url.URL, action string) (htmlForm, bool) {
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		return htmlForm{}, false
	}
	get := func(n *html.Node, name string) string {
		for _, a := range n.Attr {
			if a.Key == name {
				return a.Val
			}
		}
		return ""
	}
	var found *html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if found != nil {
			return
		}
		if n.Type == html.ElementNode && n.Data == "form" && strings.Contains(get(n, "action"), action) {
			found = n
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if found == nil {
		return htmlForm{}, false
	}
	ref, err := url.Parse(get(found, "action"))
	if err != nil {
		return htmlForm{}, false
	}
	f := htmlForm{action: base.ResolveReference(ref).String(), values: url.Values{}}
	var inputs func(*html.Node)
	inputs = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "input" && get(n, "name") != "" {
			f.values.Set(get(n, "name"), get(n, "value"))
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			inputs(c)
		}
	}
	inputs(found)
	return f, true
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// loopResult is what a Go-driven load loop measured.
type loopResult struct {
	done      int64
	rps       float64
	latencies []time.Duration // of the measured iterations
	steps     [][3]time.Duration
	err       error // the first failure
	failures  int64
	throttled int64
	shed      int64 // tolerated 503s (the storm only)
}

// loop runs iter from workers goroutines for warmup+dur and stops at the first failure. The
// iterations that start after the warm-up and before the deadline are measured, including their
// end after the deadline: the rate divides them by the time from the warm-up's end to the last one's
// end (at least dur), so a machine slower than one sign-in per dur still measures one. Each
// iteration is bounded by its HTTP client's timeout, so the loop ends at most that long after its
// deadline.
//
// With tolerateShed, a 503 from the capped password check is counted and the loop goes on: a storm
// at full tilt may queue more sign-ins than the cap serves in its 5 s wait.
func loop(ctx context.Context, workers int, warmup, dur time.Duration, tolerateShed bool, iter func(ctx context.Context, worker int) ([3]time.Duration, error)) loopResult {
	ctx, cancel := context.WithTimeout(ctx, warmup+dur+15*time.Second)
	defer cancel()
	start := time.Now()
	measureFrom, end := start.Add(warmup), start.Add(warmup+dur)
	var (
		mu   sync.Mutex
		res  loopResult
		wg   sync.WaitGroup
		bad  atomic.Bool
		last time.Duration // from measureFrom to the end of the last measured iteration
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !bad.Load() && ctx.Err() == nil {
				t := time.Now()
				if !t.Before(end) {
					return
				}
				steps, err := iter(ctx, w)
				took, now := time.Since(t), time.Now()
				mu.Lock()
				if tolerateShed && errors.Is(err, errShed) {
					res.shed++
				} else if err != nil {
					res.failures++
					if errors.Is(err, errThrottled) {
						res.throttled++
					}
					if res.err == nil {
						res.err = err
					}
					bad.Store(true)
				} else if !t.Before(measureFrom) {
					res.done++
					last = max(last, now.Sub(measureFrom))
					res.latencies = append(res.latencies, took)
					res.steps = append(res.steps, steps)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.rps = float64(res.done) / max(dur, last).Seconds()
	return res
}

// asResult turns a loop's figures into a scenario result.
func (l loopResult) asResult() result {
	r := result{RPS: l.rps, Requests: l.done, Status: "ok", Throttled: l.throttled, Shed: l.shed}
	if len(l.latencies) > 0 {
		r.P50Ms, r.P99Ms = percentileMs(l.latencies, 50), percentileMs(l.latencies, 99)
	}
	if len(l.steps) > 0 {
		for i, name := range []string{"authorize", "password", "token"} {
			var d []time.Duration
			for _, s := range l.steps {
				d = append(d, s[i])
			}
			r.Steps = append(r.Steps, stepResult{Step: name, P50Ms: percentileMs(d, 50), P99Ms: percentileMs(d, 99)})
		}
	}
	if l.err != nil {
		r.Status = fmt.Sprintf("FAILED: %d failed iterations, first: %v", l.failures, l.err)
	} else if l.done == 0 {
		r.Status = "FAILED: no iteration completed in the measured time"
	}
	return r
}

func percentileMs(d []time.Duration, p int) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	i := min(len(s)-1, (len(s)*p+99)/100-1)
	return float64(s[max(i, 0)].Microseconds()) / 1000
}

// stepResult is one step's latency within a sign-in.
type stepResult struct {
	Step  string  `json:"step"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
}

// signinRun holds what the Go-driven scenarios need from the command's options.
type signinRun struct {
	bases          []string // every replica's URL; worker i talks to bases[i%len]
	workers        int      // concurrent sign-ins
	refreshWorkers int      // refresh-token chains
	warmup, dur    time.Duration
	measureWrk     func(request) (result, error)
}

func (s signinRun) base(worker int) string { return s.bases[worker%len(s.bases)] }

func newTransport() *http.Transport {
	return &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}
}

// authorizationCode measures full sign-ins, each in a fresh cookie jar, users taken in turn.
func (e *benchEnv) authorizationCode(ctx context.Context, s signinRun) (result, error) {
	if err := e.signinSetup(ctx); err != nil {
		return result{}, err
	}
	l := e.signInStorm(ctx, s, s.warmup, s.dur, false)
	r := l.asResult()
	return r, nil
}

func (e *benchEnv) signInStorm(ctx context.Context, s signinRun, warmup, dur time.Duration, tolerateShed bool) loopResult {
	trs := make([]*http.Transport, s.workers)
	for i := range trs {
		trs[i] = newTransport()
	}
	defer func() {
		for _, t := range trs {
			t.CloseIdleConnections()
		}
	}()
	var next atomic.Int64
	return loop(ctx, s.workers, warmup, dur, tolerateShed, func(ctx context.Context, w int) ([3]time.Duration, error) {
		user := e.users[int(next.Add(1))%len(e.users)]
		si, err := e.signInOnce(ctx, trs[w], s.base(w), user, signinPassword)
		return si.steps, err
	})
}

// refreshToken signs one user in per chain (setup), then each chain refreshes in turn, carrying
// the rotated refresh token to its next request.
func (e *benchEnv) refreshToken(ctx context.Context, s signinRun) (result, error) {
	if err := e.signinSetup(ctx); err != nil {
		return result{}, err
	}
	n := s.refreshWorkers
	chains := make([]string, n)
	trs := make([]*http.Transport, n)
	for i := range trs {
		trs[i] = newTransport()
		defer trs[i].CloseIdleConnections()
	}
	// The setup sign-ins, a few at a time (each costs an argon2id hash).
	setup := loopSetup(n, 8, func(i int) error {
		si, err := e.signInOnce(ctx, trs[i], s.base(i), e.users[i%len(e.users)], signinPassword)
		chains[i] = si.refreshToken
		return err
	})
	if setup != nil {
		return result{}, fmt.Errorf("signing the refresh chains in: %w", setup)
	}
	l := loop(ctx, n, s.warmup, s.dur, false, func(ctx context.Context, w int) ([3]time.Duration, error) {
		next, err := e.refreshOnce(ctx, trs[w], s.base(w), chains[w])
		if err == nil {
			chains[w] = next
		}
		return [3]time.Duration{}, err
	})
	r := l.asResult()
	r.Steps = nil
	return r, nil
}

// loopSetup runs f(0..n-1) with at most par at once and returns the first error.
func loopSetup(n, par int, f func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// introspectDuringSignin measures introspection of a hot opaque token with wrk alone, then again
// while a sign-in storm runs at full tilt from other connections; the ratio is the second over the
// first: how much a storm of argon2id work takes from token checks.
func (e *benchEnv) introspectDuringSignin(ctx context.Context, s signinRun) (result, error) {
	if err := e.signinSetup(ctx); err != nil {
		return result{}, err
	}
	req, err := e.introspect(ctx, e.opaque, 1)
	if err != nil {
		return result{}, err
	}
	alone, err := s.measureWrk(req)
	if err != nil {
		return result{}, fmt.Errorf("introspection alone: %w", err)
	}
	// The storm starts first and runs a little past the wrk measurement (its warm-up included).
	stormCtx, stop := context.WithCancel(ctx)
	defer stop()
	storm := make(chan loopResult, 1)
	go func() { storm <- e.signInStorm(stormCtx, s, 0, s.warmup+s.dur+time.Second, true) }()
	during, err := s.measureWrk(req)
	stop()
	st := <-storm
	if err != nil {
		return result{}, fmt.Errorf("introspection during the sign-in storm: %w", err)
	}
	during.BaselineRPS, during.RatioTo = alone.RPS, "alone"
	if alone.RPS > 0 {
		during.Ratio = during.RPS / alone.RPS
	}
	during.AloneP99Ms = alone.P99Ms
	during.SignInsPerSec, during.Throttled, during.Shed = st.rps, st.throttled, st.shed
	// A sign-in cancelled when the storm is stopped is not a failure; any other is.
	if st.err != nil && !errors.Is(st.err, context.Canceled) {
		during.Status = fmt.Sprintf("FAILED: the sign-in storm failed: %v", st.err)
	} else if st.done == 0 {
		during.Status = "FAILED: no sign-in completed during the storm"
	}
	return during, nil
}

package notify_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/signet-id/signet/internal/config"
	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/notify"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

// receiver is a webhook endpoint on loopback. Its first `fail` requests get the status given,
// later ones 202 Accepted (RFC 8935 §2.2); every accepted body is sent on got.
type receiver struct {
	*httptest.Server
	got   chan *http.Request
	body  chan string
	fails atomic.Int32
	fail  int32
	code  int
}

func newReceiver(t *testing.T, fail int32, code int) *receiver {
	r := &receiver{got: make(chan *http.Request, 16), body: make(chan string, 16), fail: fail, code: code}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		if r.fails.Add(1) <= r.fail {
			w.WriteHeader(r.code)
			w.Write([]byte(`{"err":"invalid_request","description":"not now"}`))
			return
		}
		w.WriteHeader(http.StatusAccepted)
		r.got <- req
		r.body <- string(b)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) next(t *testing.T) (*http.Request, string) {
	t.Helper()
	select {
	case req := <-r.got:
		return req, <-r.body
	case <-time.After(10 * time.Second):
		t.Fatal("no notification reached the webhook within 10 s")
		return nil, ""
	}
}

// people is an impersonation setup whose rule notifies the subject.
type people struct {
	env         *testenv.Env
	spa, api    testenv.Client
	sam, dana   *store.User
	samToken    string
	notifyRule  string
	silentRule  string
	silentActor *store.User
}

func setup(t *testing.T, env *testenv.Env) *people {
	ctx := context.Background()
	p := &people{env: env, notifyRule: "support-notifies", silentRule: "ops-silent"}
	env.Server.Store.PutRole(ctx, &store.Role{Name: "customer"})
	env.Server.Store.PutRole(ctx, &store.Role{Name: "ops"})
	p.api = env.CreateClient(store.Client{Name: "orders-api"})
	p.spa = env.CreateClient(store.Client{Name: "admin-spa", Type: store.ClientSPA, AuthMethod: store.AuthNone, GrantTypes: []string{"urn:ietf:params:oauth:grant-type:token-exchange"}})
	p.sam = env.CreateUser("sam", "support")
	p.silentActor = env.CreateUser("otto", "ops")
	p.dana = env.CreateUser("dana", "customer")
	p.dana.Email = "dana@example.com"
	if err := env.Server.Store.UpdateUser(ctx, p.dana); err != nil {
		t.Fatal(err)
	}
	for _, r := range []exchange.Rule{
		{Name: p.notifyRule, Mode: exchange.ModeImpersonation, Actors: exchange.Selector{Roles: []string{"support"}}, Subjects: exchange.Subjects{Roles: []string{"customer"}},
			Clients: []string{p.spa.ID}, Audiences: []string{p.api.ID}, Scopes: []string{"read"}, NotifySubject: true},
		{Name: p.silentRule, Mode: exchange.ModeImpersonation, Actors: exchange.Selector{Roles: []string{"ops"}}, Subjects: exchange.Subjects{Roles: []string{"customer"}},
			Clients: []string{p.spa.ID}, Audiences: []string{p.api.ID}, Scopes: []string{"read"}},
	} {
		if err := env.Server.Policy.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	p.samToken = env.Token(store.KindUser, p.sam.ID, p.spa.Client, "read")
	return p
}

// impersonate opens a session as actor and returns it.
func (p *people) impersonate(t *testing.T, actor *store.User, reason string) string {
	t.Helper()
	token := p.env.Token(store.KindUser, actor.ID, p.spa.Client, "read")
	code, body := p.env.PostForm("/oauth/v2/token", map[string]string{"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "client_id": p.spa.ID,
		"subject_token": p.dana.ID, "subject_token_type": "urn:zitadel:params:oauth:token-type:user_id", "actor_token": token,
		"actor_token_type": "urn:ietf:params:oauth:token-type:access_token", "reason": reason}, "", "")
	if code != 200 {
		t.Fatalf("impersonation refused: %v", body)
	}
	_, in := p.env.PostForm("/oauth/v2/introspect", map[string]string{"token": body["access_token"].(string)}, p.api.ID, p.api.Secret)
	return in["signet_exchange"].(map[string]any)["session"].(string)
}

// verifySET checks the SET's signature against the issuer's JWKS and returns its claims.
func verifySET(t *testing.T, env *testenv.Env, raw string) map[string]any {
	t.Helper()
	resp, err := http.Get(env.URL + "/oauth/v2/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("not a compact JWS: %v", err)
	}
	h := jws.Signatures[0].Header
	if h.ExtraHeaders["typ"] != "secevent+jwt" {
		t.Fatalf("typ %v, want secevent+jwt (RFC 8417 §2.3)", h.ExtraHeaders["typ"])
	}
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q is not in the issuer's JWKS", h.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("signature does not verify with the JWKS key: %v", err)
	}
	var claims map[string]any
	json.Unmarshal(payload, &claims)
	return claims
}

// deliverer runs a Webhook to url over env's store until the test ends or stop is called; each
// completed delivery is reported on delivered.
func deliverer(t *testing.T, env *testenv.Env, url string) (delivered chan bool, stop func()) {
	delivered = make(chan bool, 16)
	w := &notify.Webhook{URL: url, Issuer: env.URL, Alg: "ES256", Store: env.Server.Store, Keys: env.Server.Keys, Log: env.Server.Log,
		Poll: 20 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Delivered: func(ok bool) {
			if ok {
				delivered <- ok
			}
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return delivered, stop
}

// TestSubjectIsNotifiedOfImpersonation: a session under a notify_subject rule reaches the webhook
// as a signed SET naming subject, actor, reason and session, even when the receiver first fails;
// a rule without the flag sends nothing, and a restarted deliverer does not send again.
func TestSubjectIsNotifiedOfImpersonation(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	p := setup(t, env)
	rcv := newReceiver(t, 2, http.StatusServiceUnavailable)
	delivered, stop := deliverer(t, env, rcv.URL+"/hooks/signet")

	silent := p.impersonate(t, p.silentActor, "maintenance")
	session := p.impersonate(t, p.sam, "ticket 4812")
	req, body := rcv.next(t)
	if req.Header.Get("Content-Type") != "application/secevent+jwt" || req.URL.Path != "/hooks/signet" || req.Method != http.MethodPost {
		t.Fatalf("delivery %s %s %q", req.Method, req.URL.Path, req.Header.Get("Content-Type"))
	}
	claims := verifySET(t, env, body)
	ev, _ := claims["events"].(map[string]any)[notify.EventURI].(map[string]any)
	if ev == nil || claims["iss"] != env.URL || claims["aud"] != rcv.URL+"/hooks/signet" || !strings.HasPrefix(claims["jti"].(string), "audit-") {
		t.Fatalf("SET claims %v", claims)
	}
	subject, actor := ev["subject"].(map[string]any), ev["actor"].(map[string]any)
	if ev["session"] != session || ev["kind"] != "impersonation" || ev["reason"] != "ticket 4812" || ev["rule"] != p.notifyRule ||
		subject["id"] != p.dana.ID || subject["email"] != "dana@example.com" || actor["username"] != "sam" || ev["client_id"] != p.spa.ID {
		t.Fatalf("event %v", ev)
	}
	if ev["session"] == silent {
		t.Fatal("the session under a rule without notify_subject was notified")
	}
	select { // the cursor is past the delivered event
	case <-delivered:
	case <-time.After(10 * time.Second):
		t.Fatal("the delivery was never recorded")
	}
	stop()
	if n := rcv.fails.Load(); n != 3 {
		t.Fatalf("%d requests reached the receiver; want 2 failures then 1 delivery", n)
	}

	// A deliverer starting afresh on the same store for the same destination resumes after its
	// cursor: the next notification it sends is the next session's, not the one already delivered.
	_, _ = deliverer(t, env, rcv.URL+"/hooks/signet")
	third := p.impersonate(t, p.sam, "ticket 4813")
	_, body = rcv.next(t)
	ev = verifySET(t, env, body)["events"].(map[string]any)[notify.EventURI].(map[string]any)
	if ev["session"] != third {
		t.Fatalf("after a restart the first notification is for %v; want the new session %s (no redelivery)", ev["session"], third)
	}
}

// TestRejectedNotificationIsSkipped: a receiver that rejects a SET (400, RFC 8935 §2.3) does not
// block the ones after it. This runs the server's own deliverer (--webhook-url), woken by the
// exchange.
func TestRejectedNotificationIsSkipped(t *testing.T) {
	rcv := newReceiver(t, 1, http.StatusBadRequest)
	env := testenv.Start(t, testenv.Options{Modify: func(c *config.Config) { c.WebhookURL = rcv.URL }})
	p := setup(t, env)
	p.impersonate(t, p.sam, "first")
	second := p.impersonate(t, p.sam, "second")
	_, body := rcv.next(t)
	ev := verifySET(t, env, body)["events"].(map[string]any)[notify.EventURI].(map[string]any)
	if ev["session"] != second {
		t.Fatalf("delivered %v; want the second session after the first was rejected", ev["session"])
	}
}

// TestEachDestinationHasItsOwnCursor: a replica configured with a wrong URL (its receiver rejects
// every SET with 400, so it skips them) must not move the cursor of the replicas sending to the
// right one: the right receiver, though it is down for a while, still gets every event.
func TestEachDestinationHasItsOwnCursor(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	p := setup(t, env)
	wrong := newReceiver(t, 1000, http.StatusBadRequest)
	right := newReceiver(t, 4, http.StatusServiceUnavailable)
	deliverer(t, env, wrong.URL)
	deliverer(t, env, right.URL)
	first := p.impersonate(t, p.sam, "one")
	second := p.impersonate(t, p.sam, "two")
	var got []any
	for range 2 {
		_, body := right.next(t)
		got = append(got, verifySET(t, env, body)["events"].(map[string]any)[notify.EventURI].(map[string]any)["session"])
	}
	if len(got) != 2 || got[0] != first || got[1] != second {
		t.Fatalf("the right receiver got %v; want both sessions in order (%s, %s)", got, first, second)
	}
}

// TestEveryReplicasChainIsDelivered: on PostgreSQL each replica appends to its own audit chain, and
// their events commit in no common order; one deliverer sends the sessions opened on both replicas,
// each once, keeping a cursor per chain.
func TestEveryReplicasChainIsDelivered(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	key := make([]byte, 32)
	rand.Read(key)
	opt := testenv.Options{DB: dsn, MasterKey: base64.StdEncoding.EncodeToString(key), Issuer: "http://signet.replicas.test"}
	one, two := testenv.Start(t, opt), testenv.Start(t, opt)
	p := setup(t, one)
	q := *p
	q.env = two
	rcv := newReceiver(t, 0, 0)
	deliverer(t, one, rcv.URL)
	want := map[any]bool{}
	for i := range 3 {
		want[p.impersonate(t, p.sam, fmt.Sprint("on one ", i))] = true
		want[q.impersonate(t, p.sam, fmt.Sprint("on two ", i))] = true
	}
	got := map[any]bool{}
	for range len(want) {
		_, body := rcv.next(t)
		session := verifySET(t, one, body)["events"].(map[string]any)[notify.EventURI].(map[string]any)["session"]
		if got[session] || !want[session] {
			t.Fatalf("delivered %v twice or unasked; want each of %v once", session, want)
		}
		got[session] = true
	}
	chains, err := one.Server.Store.AuditChains(context.Background())
	if err != nil || len(chains) < 2 {
		t.Fatalf("the replicas' audit chains: %+v %v", chains, err)
	}

	// An event that takes its sequence number before another but commits after it has been
	// delivered (a replica slow to commit) is still delivered: the other replica's chain has its own
	// cursor. Simulated with a raw transaction holding a copy of a delivered event.
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_events (chain, chain_seq, at, type, actor, subject, client, details, prev_hash, hash)
		SELECT 'slow-replica', 1, at, type, actor, subject, client, replace(details, '"session":"', '"session":"late-'), prev_hash, hash
		FROM audit_events WHERE type = 'exchange.allowed' ORDER BY seq DESC LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	after := p.impersonate(t, p.sam, "committed first")
	_, body := rcv.next(t)
	if s := verifySET(t, one, body)["events"].(map[string]any)[notify.EventURI].(map[string]any)["session"]; s != after {
		t.Fatalf("delivered %v, want %s", s, after)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	_, body = rcv.next(t)
	if s, _ := verifySET(t, one, body)["events"].(map[string]any)[notify.EventURI].(map[string]any)["session"].(string); !strings.HasPrefix(s, "late-") {
		t.Fatalf("delivered %v, want the event that committed late", s)
	}
}

package oauth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

// The randomized adversary: sequences of operations (token issue, down-scope, delegation,
// impersonation, ID-token minting, refresh, revocation of any node, rule narrowing, user lock, client
// disable, kill switch, session end) across several clients, users, staff and service accounts. After
// every step the server's answers are checked against a model the test keeps on its own:
//   - every active token's scope and audience are within what its lineage allowed under the rules in
//     force when it was issued (a refresh: when it was refreshed);
//   - every token with an act chain belongs to a session whose actor is its outermost actor;
//   - nothing derived from a revoked, locked, disabled or killed node, or an ended session, is active;
//   - every token issued by exchange or refresh has its audit row.
// SIGNET_ADVERSARY_SEEDS=N (default 6; 2 on PostgreSQL) and SIGNET_ADVERSARY_STEPS=M (default 80) set
// the budget; SIGNET_ADVERSARY_SEED=S replays one seed. A failure prints its seed.

type nodeKind int

const (
	kindAccess nodeKind = iota
	kindID
	kindRefresh
)

// node is one issued token as the model knows it.
type node struct {
	name     string // for messages: how it was made
	raw      string
	kind     nodeKind
	jti      string
	client   string // issued to
	sub      string
	scope    []string // the most it may carry
	aud      []string // the audiences it may carry (nil: anything its client allowed at issue)
	exp      int64    // it may not outlive this (0: no bound)
	parents  []*node
	issued   time.Time // before the request that made it was sent
	opened   time.Time // when its lineage's youngest session or family began (its own issue otherwise)
	grant    *family   // refresh family (refresh tokens and the access tokens they yield)
	session  string    // exchange session, once known
	imp      bool      // belongs to an impersonation session
	audited  bool      // must have an audit row
	revoked  bool
	actorSub string // outermost act.sub the model expects
}

type family struct{ revoked bool }

type advModel struct {
	t        *testing.T
	env      *testenv.Env
	rng      *rand.Rand
	nodes    []*node
	users    map[string]*store.User
	clients  map[string]testenv.Client
	accounts map[string]*store.ServiceAccount
	rules    map[string]exchange.Rule
	// when each principal was last locked/disabled (a node issued before is dead for good), and
	// whether it is now
	lockedAt map[string]time.Time
	locked   map[string]bool
	killedAt time.Time
	killed   bool
	ended    map[string]bool // sessions
	endedBy  map[string]time.Time
	made     map[string]int // nodes by how they were made, for the coverage report
	refused  map[string]int // refusals by the start of their description
	active   int            // active tokens seen by the checks
}

func adversaryBudget(t *testing.T, seeds int) (list []uint64, steps int) {
	steps = 80
	if v, err := strconv.Atoi(os.Getenv("SIGNET_ADVERSARY_STEPS")); err == nil && v > 0 {
		steps = v
	}
	if v, err := strconv.ParseUint(os.Getenv("SIGNET_ADVERSARY_SEED"), 10, 64); err == nil {
		return []uint64{v}, steps
	}
	if v, err := strconv.Atoi(os.Getenv("SIGNET_ADVERSARY_SEEDS")); err == nil && v > 0 {
		seeds = v
	}
	for i := range seeds {
		list = append(list, 0x5167_0000+uint64(i))
	}
	return list, steps
}

func TestAdversaryRandomized(t *testing.T) {
	seeds, steps := adversaryBudget(t, 6)
	exercised := 0
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			if runAdversary(t, testenv.Options{}, seed, steps) {
				exercised++
			}
		})
	}
	adversaryCoverage(t, exercised, len(seeds))
}

func TestAdversaryRandomizedPostgres(t *testing.T) {
	seeds, steps := adversaryBudget(t, 2)
	exercised := 0
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			if runAdversary(t, testenv.Options{DB: testenv.PostgresDSN(t)}, seed, steps) {
				exercised++
			}
		})
	}
	adversaryCoverage(t, exercised, len(seeds))
}

func runAdversary(t *testing.T, opt testenv.Options, seed uint64, steps int) (exercised bool) {
	env := testenv.Start(t, opt)
	m := &advModel{t: t, env: env, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		users: map[string]*store.User{}, clients: map[string]testenv.Client{}, accounts: map[string]*store.ServiceAccount{},
		rules: map[string]exchange.Rule{}, lockedAt: map[string]time.Time{}, locked: map[string]bool{}, ended: map[string]bool{}, endedBy: map[string]time.Time{}, made: map[string]int{}, refused: map[string]int{}}
	ctx := context.Background()
	env.Server.Store.PutRole(ctx, &store.Role{Name: "customer"})
	for _, name := range []string{"api1", "api2"} {
		m.clients[name] = env.CreateClient(store.Client{Name: name})
	}
	te := []string{grantTE, "client_credentials", "refresh_token"}
	m.clients["app"] = env.CreateClient(store.Client{Name: "app", GrantTypes: te, Audiences: []string{m.clients["api1"].ID, m.clients["api2"].ID}})
	m.clients["app2"] = env.CreateClient(store.Client{Name: "app2", GrantTypes: te, Audiences: []string{m.clients["api1"].ID}})
	m.clients["spa"] = env.CreateClient(store.Client{Name: "spa", Type: store.ClientSPA, AuthMethod: store.AuthNone, GrantTypes: []string{grantTE, "refresh_token"}})
	m.clients["gateway"] = env.CreateClient(store.Client{Name: "gateway", Roles: []string{"introspect-any"}})
	for _, u := range []struct{ name, role string }{{"dana", "customer"}, {"eve", "customer"}, {"sam", "support"}, {"bea", "support"}} {
		m.users[u.name] = env.CreateUser(u.name, u.role)
	}
	for _, name := range []string{"agent", "agent2"} {
		m.accounts[name] = env.CreateServiceAccount(name)
	}
	apis := []string{m.clients["api1"].ID, m.clients["api2"].ID}
	m.putRule(exchange.Rule{Name: "imp", Mode: exchange.ModeImpersonation, Actors: exchange.Selector{Roles: []string{"support"}}, Subjects: exchange.Subjects{Roles: []string{"customer"}},
		Clients: []string{m.clients["spa"].ID, m.clients["app"].ID}, Audiences: apis, Scopes: []string{"read", "write"}, AllowRefresh: true, RefreshTTL: exchange.Duration(time.Hour)})
	m.putRule(exchange.Rule{Name: "del", Mode: exchange.ModeDelegation, Actors: exchange.Selector{ServiceAccounts: []string{"agent", "agent2"}}, Subjects: exchange.Subjects{Users: []string{"*"}},
		Clients: []string{m.clients["app"].ID, m.clients["app2"].ID}, Audiences: apis, Scopes: []string{"read", "write"}, AllowRefresh: true, RefreshTTL: exchange.Duration(time.Hour)})

	ops := []struct {
		weight int
		run    func()
	}{
		{6, m.opIssue}, {5, m.opDownscope}, {6, m.opDelegate}, {5, m.opImpersonate}, {4, m.opRefresh},
		{3, m.opRevoke}, {2, m.opNarrowRule}, {1, m.opLock}, {1, m.opDisableClient}, {1, m.opKillSwitch}, {1, m.opEndSessions},
	}
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	for step := range steps {
		pick := m.rng.IntN(total)
		for _, o := range ops {
			if pick < o.weight {
				o.run()
				break
			}
			pick -= o.weight
		}
		if msg := m.check(); msg != "" {
			t.Fatalf("seed %d, step %d: %s\nreplay with SIGNET_ADVERSARY_SEED=%d SIGNET_ADVERSARY_STEPS=%d", seed, step, msg, seed, step+1)
		}
	}
	if msg := m.checkAudit(); msg != "" {
		t.Fatalf("seed %d: %s", seed, msg)
	}
	t.Logf("seed %d: %d steps, tokens made %v, active-token checks %d, refusals %v", seed, steps, m.made, m.active, m.refused)
	return m.made["exchanged"] > 0 && m.active > 0
}

// adversaryCoverage fails a run in which too few seeds got an exchange through: a seed whose clients
// are disabled early exercises little, but most must exercise the exchange paths.
func adversaryCoverage(t *testing.T, exercised, seeds int) {
	if exercised*2 < seeds {
		t.Fatalf("only %d of %d seeds exercised an exchange; the adversary tests nothing", exercised, seeds)
	}
}

func (m *advModel) putRule(r exchange.Rule) {
	if err := m.env.Server.Policy.Put(context.Background(), r); err != nil {
		m.t.Fatal(err)
	}
	m.rules[r.Name] = r
}

func pickOne[T any](m *advModel, list []T) T { return list[m.rng.IntN(len(list))] }

// askScope is a scope parameter: mostly nothing (as much as allowed), sometimes a subset of what
// could be allowed, sometimes more than anything allows.
func (m *advModel) askScope(of ...string) string {
	switch r := m.rng.IntN(10); {
	case r < 6:
		return ""
	case r < 9:
		return strings.Join(m.subset(of), " ")
	}
	return strings.Join(append(m.subset(of), "admin"), " ")
}

func (m *advModel) subset(of []string) []string {
	var out []string
	for _, s := range of {
		if m.rng.IntN(2) == 0 {
			out = append(out, s)
		}
	}
	return out
}

// live returns model nodes of the given kinds, in a stable order.
func (m *advModel) pickNode(kinds ...nodeKind) *node {
	var c []*node
	for _, n := range m.nodes {
		if slices.Contains(kinds, n.kind) {
			c = append(c, n)
		}
	}
	if len(c) == 0 {
		return nil
	}
	return pickOne(m, c)
}

func claimsOf(raw string) map[string]any {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var c map[string]any
	json.Unmarshal(b, &c)
	return c
}

func (m *advModel) add(n *node) *node {
	if c := claimsOf(n.raw); c != nil {
		n.jti, _ = c["jti"].(string)
	}
	if n.opened.IsZero() {
		n.opened = n.issued
	}
	m.nodes = append(m.nodes, n)
	m.made[n.name]++
	return n
}

// exchange posts a token exchange as client name and records what it yields.
func (m *advModel) exchange(client string, form map[string]string) (map[string]any, bool) {
	form["grant_type"] = grantTE
	code, body := m.env.PostAs(m.clients[client], "/oauth/v2/token", form)
	if code/100 == 5 {
		m.t.Fatalf("server error: %v", body)
	}
	if code != 200 {
		d, _ := body["error_description"].(string)
		if len(d) > 60 {
			d = d[:60]
		}
		m.refused[d]++
	}
	return body, code == 200
}

func minExp(ns ...*node) int64 {
	var e int64
	for _, n := range ns {
		if n != nil && n.exp > 0 && (e == 0 || n.exp < e) {
			e = n.exp
		}
	}
	return e
}

func intersect(a, b []string) []string {
	return slices.DeleteFunc(slices.Clone(a), func(s string) bool { return !slices.Contains(b, s) })
}

// opIssue mints a base token, as the token endpoint or `signet token issue` would.
func (m *advModel) opIssue() {
	client := pickOne(m, []string{"app", "app2", "spa"})
	c := m.clients[client]
	scope := m.subset([]string{"read", "write", "admin"})
	var kind store.PrincipalKind
	var sub string
	if m.rng.IntN(3) == 0 {
		kind, sub = store.KindServiceAccount, pickOne(m, []*store.ServiceAccount{m.accounts["agent"], m.accounts["agent2"]}).ID
	} else {
		kind, sub = store.KindUser, pickOne(m, []string{"dana", "eve", "sam", "bea"})
		if m.locked[m.users[sub].ID] {
			return // the token endpoint refuses locked users; nothing to model
		}
		sub = m.users[sub].ID
	}
	if m.locked[c.ID] {
		return
	}
	issued := time.Now()
	raw := m.env.Token(kind, sub, c.Client, scope...)
	cl := claimsOf(raw)
	exp := int64(cl["exp"].(float64))
	m.add(&node{name: "issued", raw: raw, client: c.ID, sub: sub, scope: scope, exp: exp, issued: issued})
}

func (m *advModel) opDownscope() {
	p := m.pickNode(kindAccess)
	if p == nil {
		return
	}
	client := m.clientName(p.client)
	if client == "" || client == "spa" && m.rng.IntN(2) == 0 {
		return
	}
	scope := strings.Fields(m.askScope(p.scope...))
	form := map[string]string{"subject_token": p.raw, "subject_token_type": typeAT, "scope": strings.Join(scope, " ")}
	kind := kindAccess
	if m.rng.IntN(3) == 0 {
		form["requested_token_type"], kind = typeID, kindID
	}
	issued := time.Now()
	body, ok := m.exchange(client, form)
	if !ok {
		return
	}
	bound := p.scope
	if len(scope) > 0 {
		bound = intersect(bound, scope)
	}
	m.add(&node{name: "down-scoped", raw: body["access_token"].(string), kind: kind, client: p.client, sub: p.sub, scope: bound, aud: p.aud,
		exp: p.exp, parents: []*node{p}, issued: issued, opened: p.opened, audited: true, session: p.session, imp: p.imp, actorSub: p.actorSub})
}

func (m *advModel) clientName(id string) string {
	for name, c := range m.clients {
		if c.ID == id {
			return name
		}
	}
	return ""
}

func (m *advModel) opDelegate() {
	subj := m.pickNode(kindAccess, kindID)
	if subj == nil {
		return
	}
	client := m.clientName(subj.client)
	if client != "app" && client != "app2" {
		client = pickOne(m, []string{"app", "app2"})
	}
	acct := pickOne(m, []string{"agent", "agent2"})
	// The actor's own token, usually bound to the requester, sometimes to another client.
	actorClient := client
	if m.rng.IntN(5) == 0 {
		actorClient = pickOne(m, []string{"app", "app2"})
	}
	if m.locked[m.accounts[acct].ID] || m.locked[m.clients[actorClient].ID] {
		return
	}
	actorIssued := time.Now()
	actorRaw := m.env.Token(store.KindServiceAccount, m.accounts[acct].ID, m.clients[actorClient].Client, "read", "write")
	actor := m.add(&node{name: "actor", raw: actorRaw, client: m.clients[actorClient].ID, sub: m.accounts[acct].ID, scope: []string{"read", "write"},
		exp: int64(claimsOf(actorRaw)["exp"].(float64)), issued: actorIssued})
	typ := typeAT
	if subj.kind == kindID {
		typ = typeID
	}
	form := map[string]string{"subject_token": subj.raw, "subject_token_type": typ, "actor_token": actorRaw, "actor_token_type": typeAT,
		"audience": pickOne(m, m.rules["del"].Audiences), "scope": m.askScope("read", "write")}
	m.exchanged(client, form, m.rules["del"], subj, actor, false)
}

func (m *advModel) opImpersonate() {
	staff := pickOne(m, []string{"sam", "bea"})
	client := pickOne(m, []string{"spa", "app"})
	if m.locked[m.users[staff].ID] {
		return
	}
	actorIssued := time.Now()
	actorRaw := m.env.Token(store.KindUser, m.users[staff].ID, m.clients[client].Client, "read", "write")
	actor := m.add(&node{name: "staff", raw: actorRaw, client: m.clients[client].ID, sub: m.users[staff].ID, scope: []string{"read", "write"},
		exp: int64(claimsOf(actorRaw)["exp"].(float64)), issued: actorIssued})
	form := map[string]string{"subject_token": m.users[pickOne(m, []string{"dana", "eve"})].ID, "subject_token_type": typeUser, "actor_token": actorRaw,
		"actor_token_type": typeAT, "audience": pickOne(m, m.rules["imp"].Audiences), "scope": m.askScope("read", "write")}
	var subj *node
	if m.rng.IntN(4) == 0 {
		// Try to continue someone else's session instead.
		if s := m.pickNode(kindAccess); s != nil {
			subj, form["subject_token"], form["subject_token_type"] = s, s.raw, typeAT
		}
	}
	m.exchanged(client, form, m.rules["imp"], subj, actor, true)
}

// exchanged sends a delegation or impersonation and models its result.
func (m *advModel) exchanged(client string, form map[string]string, rule exchange.Rule, subj, actor *node, imp bool) {
	if m.rng.IntN(3) == 0 {
		form["requested_token_type"] = typeRT
	} else if m.rng.IntN(4) == 0 {
		form["requested_token_type"] = typeID
	}
	if imp {
		form["reason"] = "adversary"
	}
	issued := time.Now()
	body, ok := m.exchange(client, form)
	if !ok {
		return
	}
	bound := intersect(rule.Scopes, actor.scope)
	if subj != nil {
		bound = intersect(rule.Scopes, subj.scope)
	}
	if s := strings.Fields(form["scope"]); len(s) > 0 {
		bound = intersect(bound, s)
	}
	parents := []*node{actor}
	if subj != nil {
		parents = []*node{subj, actor}
	}
	sub := form["subject_token"]
	if subj != nil {
		sub = subj.sub
	}
	n := &node{name: "exchanged", raw: body["access_token"].(string), client: m.clients[client].ID, sub: sub, scope: bound, aud: rule.Audiences,
		exp: minExp(subj, actor), parents: parents, issued: issued, audited: true, imp: imp, actorSub: actor.sub}
	if form["requested_token_type"] == typeID {
		n.kind = kindID
	}
	if rt, ok := body["refresh_token"].(string); ok {
		f := &family{}
		n.grant = f
		m.add(n)
		m.add(&node{name: "refresh", raw: rt, kind: kindRefresh, client: n.client, sub: sub, scope: bound, aud: rule.Audiences, parents: parents,
			issued: issued, grant: f, imp: imp, actorSub: actor.sub})
		return
	}
	m.add(n)
}

func (m *advModel) opRefresh() {
	r := m.pickNode(kindRefresh)
	if r == nil {
		return
	}
	c := m.clients[m.clientName(r.client)]
	form := map[string]string{"grant_type": "refresh_token", "refresh_token": r.raw}
	form["scope"] = m.askScope(r.scope...)
	rule := m.rules["del"]
	if r.imp {
		rule = m.rules["imp"]
	}
	issued := time.Now()
	code, body := m.env.PostAs(c, "/oauth/v2/token", form)
	if code/100 == 5 {
		m.t.Fatalf("server error: %v", body)
	}
	if code != 200 {
		return
	}
	bound := intersect(r.scope, rule.Scopes)
	if s := strings.Fields(form["scope"]); len(s) > 0 {
		bound = intersect(bound, s)
	}
	aud := intersect(r.aud, rule.Audiences)
	m.add(&node{name: "refreshed", raw: body["access_token"].(string), client: r.client, sub: r.sub, scope: bound, aud: aud, parents: r.parents,
		issued: issued, opened: r.opened, grant: r.grant, audited: true, imp: r.imp, actorSub: r.actorSub})
	// The successor replaces the used refresh token (which now only triggers reuse detection).
	m.add(&node{name: "refresh", raw: body["refresh_token"].(string), kind: kindRefresh, client: r.client, sub: r.sub, scope: bound, aud: aud, parents: r.parents,
		issued: issued, opened: r.opened, grant: r.grant, imp: r.imp, actorSub: r.actorSub})
}

func (m *advModel) opRevoke() {
	n := m.pickNode(kindAccess, kindRefresh)
	if n == nil {
		return
	}
	c := m.clients[m.clientName(n.client)]
	if c.AuthMethod == store.AuthNone {
		return // public clients cannot authenticate at revocation
	}
	if code, body := m.env.PostForm("/oauth/v2/revoke", map[string]string{"token": n.raw}, c.ID, c.Secret); code != 200 {
		if code == 401 && m.locked[c.ID] {
			return
		}
		m.t.Fatalf("revocation refused: %d %v", code, body)
	}
	if n.kind == kindRefresh || n.grant != nil && n.kind == kindRefresh {
		n.grant.revoked = true
	}
	n.revoked = true
}

func (m *advModel) opNarrowRule() {
	name := pickOne(m, []string{"imp", "del"})
	r := m.rules[name]
	r.Scopes = m.subset([]string{"read", "write"})
	aud := m.subset([]string{m.clients["api1"].ID, m.clients["api2"].ID})
	if len(aud) == 0 {
		aud = []string{m.clients["api1"].ID}
	}
	r.Audiences = aud
	m.putRule(r)
}

// opLock locks or unlocks a user the way `signet user lock` does (store change, retirement of
// its tokens), with the change feed delivered.
func (m *advModel) opLock() {
	u := m.users[pickOne(m, []string{"dana", "eve", "sam", "bea"})]
	ctx := context.Background()
	lock := !m.locked[u.ID]
	at := time.Now()
	u.Locked = lock
	if err := m.env.Server.Store.UpdateUser(ctx, u); err != nil {
		m.t.Fatal(err)
	}
	if lock {
		if err := m.env.Server.Sessions.RetirePrincipal(ctx, store.KindUser, u.ID, "adversary", "locked", time.Hour); err != nil {
			m.t.Fatal(err)
		}
		m.lockedAt[u.ID] = at
		m.endActorSessions(u.ID, at)
	}
	m.locked[u.ID] = lock
	m.env.Server.Watcher.Poll(ctx)
}

func (m *advModel) opDisableClient() {
	name := pickOne(m, []string{"app", "app2"})
	c := m.clients[name]
	ctx := context.Background()
	disable := !m.locked[c.ID]
	at := time.Now()
	cp, err := m.env.Server.Store.GetClient(ctx, c.ID)
	if err != nil {
		m.t.Fatal(err)
	}
	cp.Disabled = disable
	if err := m.env.Server.Store.UpdateClient(ctx, cp); err != nil {
		m.t.Fatal(err)
	}
	if disable {
		if err := m.env.Server.Sessions.RetirePrincipal(ctx, store.KindClient, c.ID, "adversary", "disabled", time.Hour); err != nil {
			m.t.Fatal(err)
		}
		m.lockedAt[c.ID] = at
	}
	m.locked[c.ID] = disable
	m.env.Server.Watcher.Poll(ctx)
}

func (m *advModel) opKillSwitch() {
	ctx := context.Background()
	at := time.Now()
	if m.killed {
		m.env.Server.Sessions.Enable(ctx, "adversary", "on again")
	} else {
		m.env.Server.Sessions.Disable(ctx, "adversary", "off")
		m.killedAt = at
	}
	m.killed = !m.killed
}

func (m *advModel) opEndSessions() {
	staff := pickOne(m, []string{"sam", "bea", "agent", "agent2"})
	id := ""
	if u, ok := m.users[staff]; ok {
		id = u.ID
	} else {
		id = m.accounts[staff].ID
	}
	at := time.Now()
	if _, err := m.env.Server.Sessions.EndActor(context.Background(), id, "adversary", "end"); err != nil {
		m.t.Fatal(err)
	}
	m.endActorSessions(id, at)
}

func (m *advModel) endActorSessions(actor string, at time.Time) { m.endedBy[actor] = at }

// dead says why the model requires n to be inactive, or "".
func (m *advModel) dead(n *node) string {
	if n.revoked {
		return "revoked"
	}
	if n.grant != nil && n.grant.revoked {
		return "its grant was revoked"
	}
	for _, p := range []string{n.sub, n.client} {
		if m.locked[p] {
			return p + " is locked or disabled"
		}
		if at, ok := m.lockedAt[p]; ok && n.opened.Before(at) {
			return p + " was locked or disabled after it was issued"
		}
	}
	if n.actorSub != "" {
		if at, ok := m.endedBy[n.actorSub]; ok && n.opened.Before(at) && n.imp || ok && n.opened.Before(at) && n.grant != nil || ok && n.opened.Before(at) && n.session != "" {
			return "its actor's sessions were ended"
		}
		if m.locked[n.actorSub] {
			return "its actor is locked"
		}
	}
	if n.imp && (m.killed || !m.killedAt.IsZero() && n.opened.Before(m.killedAt)) {
		return "the kill switch"
	}
	for _, p := range n.parents {
		if why := m.dead(p); why != "" {
			return "parent " + p.name + ": " + why
		}
	}
	return ""
}

// check introspects every access token of the model through the gateway and holds the answers to
// the invariants.
func (m *advModel) check() string {
	ctx := context.Background()
	gw := m.clients["gateway"]
	for _, n := range m.nodes {
		if n.kind != kindAccess {
			continue
		}
		_, info := m.env.PostForm("/oauth/v2/introspect", map[string]string{"token": n.raw}, gw.ID, gw.Secret)
		if info["active"] != true {
			continue
		}
		if x, ok := info["signet_exchange"].(map[string]any); ok && n.session == "" {
			n.session, _ = x["session"].(string)
		}
		m.active++
		if why := m.dead(n); why != "" {
			return fmt.Sprintf("%s token %s is active although %s: %v", n.name, n.jti, why, info)
		}
		scope := strings.Fields(fmt.Sprint(info["scope"]))
		if info["scope"] == nil {
			scope = nil
		}
		for _, s := range scope {
			if !slices.Contains(n.scope, s) {
				return fmt.Sprintf("%s token %s has scope %q beyond its lineage's %v: %v", n.name, n.jti, s, n.scope, info)
			}
		}
		if n.aud != nil {
			for _, a := range info["aud"].([]any) {
				if !slices.Contains(n.aud, a.(string)) && a != n.client {
					return fmt.Sprintf("%s token %s has audience %v beyond %v", n.name, n.jti, a, n.aud)
				}
			}
		}
		if n.exp > 0 && int64(info["exp"].(float64)) > n.exp {
			return fmt.Sprintf("%s token %s outlives its inputs: exp %v > %d", n.name, n.jti, info["exp"], n.exp)
		}
		if act, ok := info["act"].(map[string]any); ok {
			x, _ := info["signet_exchange"].(map[string]any)
			if x == nil {
				return fmt.Sprintf("%s token %s acts without a session", n.name, n.jti)
			}
			s, err := m.env.Server.Store.GetExchangeSession(ctx, x["session"].(string))
			if err != nil || s.Actor != act["sub"] {
				return fmt.Sprintf("%s token %s: act.sub %v but its session %v belongs to %+v (%v)", n.name, n.jti, act["sub"], x["session"], s, err)
			}
			if n.actorSub != "" && act["sub"] != n.actorSub {
				return fmt.Sprintf("%s token %s: act.sub %v, the model expects %s", n.name, n.jti, act["sub"], n.actorSub)
			}
		}
	}
	return ""
}

// checkAudit: every token issued by exchange or refresh has its audit row (by jti).
func (m *advModel) checkAudit() string {
	events, err := m.env.Server.Store.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil {
		return err.Error()
	}
	jtis := map[string]bool{}
	for _, e := range events {
		if e.Type != audit.TypeExchangeAllowed && e.Type != audit.TypeTokenIssued {
			continue
		}
		var d struct {
			JTI string `json:"jti"`
		}
		json.Unmarshal(e.Details, &d)
		jtis[d.JTI] = true
	}
	for _, n := range m.nodes {
		if n.audited && n.jti != "" && !jtis[n.jti] {
			return fmt.Sprintf("%s token %s has no audit row", n.name, n.jti)
		}
	}
	return ""
}

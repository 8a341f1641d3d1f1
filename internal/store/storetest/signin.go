package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/store"
)

// Interactive sign-in: login requests, browser sessions, authorization codes, consents, second
// factors and failed-sign-in counters (store.SignInStore).

// race runs n callers of do at once and returns their errors.
func race(n int, do func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = do(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// oneWinner checks that exactly one caller succeeded and every other got ErrConflict; it returns
// the winner's index.
func oneWinner(t *testing.T, errs []error, what string) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("%s: callers %d and %d both succeeded", what, winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("%s: caller %d: want success or %v, got %v", what, i, store.ErrConflict, err)
		}
	}
	if winner < 0 {
		t.Fatalf("%s: nobody succeeded", what)
	}
	return winner
}

func same(t *testing.T, got, want any, what string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func testLoginRequests(t *testing.T, s store.Store) {
	r := &store.LoginRequest{ID: "lr1", ClientID: "app", Request: []byte(`{"scope":"openid"}`), BrowserHash: []byte{0, 1, 2, 0xff},
		CreatedAt: at, ExpiresAt: at.Add(10 * time.Minute)}
	ok(t, s.CreateLoginRequest(ctx, r), "create")
	got, err := s.GetLoginRequest(ctx, "lr1")
	ok(t, err, "get")
	same(t, got, r, "round trip")
	is(t, s.CreateLoginRequest(ctx, &store.LoginRequest{ID: "lr1", Request: []byte("{}"), BrowserHash: []byte("b"), CreatedAt: at, ExpiresAt: at}),
		store.ErrConflict, "duplicate ID")
	_, err = s.GetLoginRequest(ctx, "nosuch")
	is(t, err, store.ErrNotFound, "missing request")

	got.UserID, got.PasswordAt, got.Request = "u1", at.Add(time.Minute+time.Microsecond), []byte(`{"scope":"openid","fresh":true}`)
	ok(t, s.UpdateLoginRequest(ctx, got), "update")
	after, err := s.GetLoginRequest(ctx, "lr1")
	ok(t, err, "get after update")
	same(t, after, got, "update")
	is(t, s.UpdateLoginRequest(ctx, &store.LoginRequest{ID: "nosuch", UserID: "u"}), store.ErrNotFound, "update missing")

	done := at.Add(2 * time.Minute)
	ok(t, s.FinishLoginRequest(ctx, "lr1", done), "finish")
	is(t, s.FinishLoginRequest(ctx, "lr1", done.Add(time.Second)), store.ErrConflict, "finish twice")
	is(t, s.FinishLoginRequest(ctx, "nosuch", done), store.ErrNotFound, "finish missing")
	after, _ = s.GetLoginRequest(ctx, "lr1")
	if !after.DoneAt.Equal(done) || after.UserID != "u1" {
		t.Fatalf("finish: the first answer must stay: %+v", after)
	}
	// A slower tab cannot move a finished request on, nor make it unfinished.
	late := *after
	late.UserID, late.DoneAt = "u2", time.Time{}
	is(t, s.UpdateLoginRequest(ctx, &late), store.ErrNotFound, "update after finish")
	if after, _ = s.GetLoginRequest(ctx, "lr1"); !after.DoneAt.Equal(done) || after.UserID != "u1" {
		t.Fatalf("an update after finish changed the request: %+v", after)
	}

	// However many tabs post the request at once, it yields one answer.
	ok(t, s.CreateLoginRequest(ctx, &store.LoginRequest{ID: "lr2", ClientID: "app", Request: []byte("{}"), BrowserHash: []byte("b"), CreatedAt: at, ExpiresAt: at.Add(time.Hour)}), "second")
	errs := race(16, func(i int) error { return s.FinishLoginRequest(ctx, "lr2", at.Add(time.Duration(i+1)*time.Second)) })
	w := oneWinner(t, errs, "concurrent finish")
	if after, _ := s.GetLoginRequest(ctx, "lr2"); !after.DoneAt.Equal(at.Add(time.Duration(w+1) * time.Second)) {
		t.Fatalf("the stored answer is not the winner's: %v, winner %d", after.DoneAt, w)
	}
}

func browserSession(id, user string, created time.Time, ttl time.Duration) *store.BrowserSession {
	return &store.BrowserSession{ID: id, SecretHash: []byte("secret-" + id), UserID: user, CreatedAt: created, AuthTime: created,
		AMR: []string{store.AMRPassword}, LastSeenAt: created, ExpiresAt: created.Add(ttl), IP: "192.0.2.1", UserAgent: "Firefox"}
}

func sessionIDs(list []store.BrowserSession) []string {
	var ids []string
	for _, b := range list {
		ids = append(ids, b.ID)
	}
	return ids
}

func testBrowserSessions(t *testing.T, s store.Store) {
	full := &store.BrowserSession{ID: "bs1", SecretHash: []byte{9, 8, 7}, UserID: "u1", CreatedAt: at, AuthTime: at.Add(time.Microsecond),
		AMR: []string{store.AMRPassword, store.AMROTP, store.AMRMFA}, MFAAt: at.Add(2 * time.Microsecond), LastSeenAt: at.Add(3 * time.Microsecond),
		ExpiresAt: at.Add(24 * time.Hour), EndedAt: time.Time{}, EndedBy: "", IP: "2001:db8::1", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) \"quoted\""}
	ok(t, s.CreateBrowserSession(ctx, full), "create")
	got, err := s.GetBrowserSession(ctx, "bs1")
	ok(t, err, "get")
	same(t, got, full, "round trip")
	is(t, s.CreateBrowserSession(ctx, browserSession("bs1", "u2", at, time.Hour)), store.ErrConflict, "duplicate ID")
	_, err = s.GetBrowserSession(ctx, "nosuch")
	is(t, err, store.ErrNotFound, "missing session")

	// Listing: newest first; activeAt leaves out ended and expired sessions.
	ok(t, s.CreateBrowserSession(ctx, browserSession("bs2", "u1", at.Add(time.Microsecond), time.Hour)), "bs2")
	ok(t, s.CreateBrowserSession(ctx, browserSession("bs3", "u1", at.Add(time.Minute), time.Hour)), "bs3")
	ok(t, s.CreateBrowserSession(ctx, browserSession("bs4", "u1", at.Add(-time.Hour), time.Minute)), "bs4 (expired at at)")
	ok(t, s.CreateBrowserSession(ctx, browserSession("other", "u2", at.Add(time.Hour), time.Hour)), "another user's")
	list, err := s.ListBrowserSessions(ctx, "u1", time.Time{})
	ok(t, err, "list all")
	same(t, sessionIDs(list), []string{"bs3", "bs2", "bs1", "bs4"}, "all sessions, newest first")
	same(t, list[3], *browserSession("bs4", "u1", at.Add(-time.Hour), time.Minute), "listed session")
	list, _ = s.ListBrowserSessions(ctx, "u1", at.Add(time.Minute))
	same(t, sessionIDs(list), []string{"bs3", "bs2", "bs1"}, "active sessions")
	list, _ = s.ListBrowserSessions(ctx, "u1", at.Add(time.Minute+time.Hour)) // bs3 expires exactly then, bs2 a minute before
	same(t, sessionIDs(list), []string{"bs1"}, "active an hour later (expiry is exclusive)")
	if list, _ := s.ListBrowserSessions(ctx, "nobody", time.Time{}); len(list) != 0 {
		t.Fatalf("sessions of nobody: %+v", list)
	}

	// Reauthentication: new secret, time, methods and second-factor time; only while active.
	reauth := at.Add(30 * time.Minute)
	ok(t, s.ReauthBrowserSession(ctx, "bs2", []byte("new-secret"), reauth, []string{store.AMRPassword, store.AMRRecovery, store.AMRMFA}, reauth), "reauth")
	want := browserSession("bs2", "u1", at.Add(time.Microsecond), time.Hour)
	want.SecretHash, want.AuthTime, want.AMR, want.MFAAt = []byte("new-secret"), reauth, []string{store.AMRPassword, store.AMRRecovery, store.AMRMFA}, reauth
	got, _ = s.GetBrowserSession(ctx, "bs2")
	same(t, got, want, "after reauth")
	is(t, s.ReauthBrowserSession(ctx, "bs4", []byte("x"), at, nil, time.Time{}), store.ErrNotFound, "reauth an expired session")
	is(t, s.ReauthBrowserSession(ctx, "bs2", []byte("x"), at.Add(time.Hour+time.Microsecond), nil, time.Time{}), store.ErrNotFound, "reauth after expiry")
	is(t, s.ReauthBrowserSession(ctx, "nosuch", []byte("x"), at, nil, time.Time{}), store.ErrNotFound, "reauth a missing session")

	seen := at.Add(5 * time.Minute)
	ok(t, s.TouchBrowserSession(ctx, "bs3", seen), "touch")
	if got, _ := s.GetBrowserSession(ctx, "bs3"); !got.LastSeenAt.Equal(seen) {
		t.Fatalf("touch: last seen %v", got.LastSeenAt)
	}

	// Ending one.
	ended := at.Add(10 * time.Minute)
	ok(t, s.EndBrowserSession(ctx, "bs3", "user", ended), "end")
	got, _ = s.GetBrowserSession(ctx, "bs3")
	if !got.EndedAt.Equal(ended) || got.EndedBy != "user" || got.Active(ended) {
		t.Fatalf("end: %+v", got)
	}
	is(t, s.EndBrowserSession(ctx, "bs3", "admin", ended), store.ErrNotFound, "end twice")
	if got, _ := s.GetBrowserSession(ctx, "bs3"); got.EndedBy != "user" || !got.EndedAt.Equal(ended) {
		t.Fatalf("ending again changed the session: %+v", got)
	}
	is(t, s.EndBrowserSession(ctx, "bs4", "user", ended), store.ErrNotFound, "end an expired session")
	is(t, s.EndBrowserSession(ctx, "nosuch", "user", ended), store.ErrNotFound, "end a missing session")
	is(t, s.ReauthBrowserSession(ctx, "bs3", []byte("x"), ended, nil, time.Time{}), store.ErrNotFound, "reauth an ended session")

	// Ending all of a user's sessions but one: only active ones, only that user's.
	ok(t, s.CreateBrowserSession(ctx, browserSession("bs5", "u1", at.Add(2*time.Minute), time.Hour)), "bs5")
	ids, err := s.EndBrowserSessions(ctx, "u1", "bs5", "user:elsewhere", ended)
	ok(t, err, "end others")
	slices.Sort(ids)
	same(t, ids, []string{"bs1", "bs2"}, "ended sessions")
	for _, id := range []string{"bs1", "bs2"} {
		got, _ := s.GetBrowserSession(ctx, id)
		if got.EndedBy != "user:elsewhere" || !got.EndedAt.Equal(ended) {
			t.Fatalf("%s after ending all: %+v", id, got)
		}
	}
	if got, _ := s.GetBrowserSession(ctx, "bs3"); got.EndedBy != "user" {
		t.Fatalf("an ended session was ended again: %+v", got)
	}
	if got, _ := s.GetBrowserSession(ctx, "bs5"); !got.Active(ended) {
		t.Fatalf("the excepted session was ended: %+v", got)
	}
	if got, _ := s.GetBrowserSession(ctx, "other"); !got.EndedAt.IsZero() {
		t.Fatalf("another user's session was ended: %+v", got)
	}
	ids, err = s.EndBrowserSessions(ctx, "u1", "", "admin", ended)
	ok(t, err, "end all")
	same(t, ids, []string{"bs5"}, "ended without exception")
	ids, err = s.EndBrowserSessions(ctx, "u1", "", "admin", ended)
	ok(t, err, "end all again")
	if len(ids) != 0 {
		t.Fatalf("ending again ended %v", ids)
	}
}

// testSessionClients: the clients a session signed in to are recorded once each, in the order
// first signed in to, concurrently without error, and kept apart per session.
func testSessionClients(t *testing.T, s store.Store) {
	ok(t, s.CreateBrowserSession(ctx, browserSession("bs-a", "u1", at, time.Hour)), "session a")
	ok(t, s.CreateBrowserSession(ctx, browserSession("bs-b", "u1", at, time.Hour)), "session b")
	none, err := s.SessionClients(ctx, "bs-a")
	ok(t, err, "clients of a session that signed in to none")
	same(t, len(none), 0, "clients before any code")
	ok(t, s.AddSessionClient(ctx, "bs-a", "wiki", at.Add(2*time.Second)), "add wiki")
	ok(t, s.AddSessionClient(ctx, "bs-a", "mail", at.Add(time.Second)), "add mail")
	ok(t, s.AddSessionClient(ctx, "bs-a", "wiki", at.Add(3*time.Second)), "add wiki again")
	ok(t, s.AddSessionClient(ctx, "bs-a", "chat", at.Add(time.Second)), "add chat")
	ok(t, s.AddSessionClient(ctx, "bs-b", "wiki", at), "add wiki to b")
	got, err := s.SessionClients(ctx, "bs-a")
	ok(t, err, "clients of a")
	same(t, got, []string{"chat", "mail", "wiki"}, "clients of a, first signed in to first")
	got, err = s.SessionClients(ctx, "bs-b")
	ok(t, err, "clients of b")
	same(t, got, []string{"wiki"}, "clients of b")
	got, err = s.SessionClients(ctx, "bs-nosuch")
	ok(t, err, "clients of an unknown session")
	same(t, len(got), 0, "clients of an unknown session")

	// Every sign-in records the pair: concurrent ones for the same client must all succeed.
	for i, err := range race(16, func(i int) error {
		return s.AddSessionClient(ctx, "bs-b", "mail", at.Add(time.Duration(i)*time.Second))
	}) {
		ok(t, err, fmt.Sprintf("concurrent add %d", i))
	}
	got, err = s.SessionClients(ctx, "bs-b")
	ok(t, err, "clients of b")
	same(t, got, []string{"wiki", "mail"}, "clients of b after concurrent adds")
}

func authCode(id string, hash byte, exp time.Time) *store.AuthCode {
	return &store.AuthCode{Hash: []byte{'c', hash}, ID: id, ClientID: "app", RedirectURI: "https://app/cb", UserID: "u1", SessionID: "bs1",
		Scope: []string{"openid", "profile"}, Nonce: "n-0S6", CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		AuthTime: at.Add(-time.Second), AMR: []string{store.AMRPassword, store.AMROTP}, ACR: "urn:signet:mfa", GrantID: "g-" + id,
		CreatedAt: at, ExpiresAt: exp}
}

func testAuthCodes(t *testing.T, s store.Store) {
	c := authCode("code1", 1, at.Add(time.Minute))
	ok(t, s.CreateAuthCode(ctx, c), "create")
	is(t, s.CreateAuthCode(ctx, authCode("code2", 1, at)), store.ErrConflict, "duplicate hash")
	is(t, s.CreateAuthCode(ctx, authCode("code1", 2, at)), store.ErrConflict, "duplicate ID")

	use := at.Add(5 * time.Second)
	got, err := s.UseAuthCode(ctx, c.Hash, use)
	ok(t, err, "use")
	want := *c
	want.UsedAt = use
	same(t, got, &want, "the redeemed code")

	again, err := s.UseAuthCode(ctx, c.Hash, use.Add(time.Second))
	is(t, err, store.ErrConflict, "use twice")
	same(t, again, &want, "a replayed code is returned as first used")

	missing, err := s.UseAuthCode(ctx, []byte("nosuch"), use)
	is(t, err, store.ErrNotFound, "use a missing code")
	if missing != nil {
		t.Fatalf("a missing code returned %+v", missing)
	}

	// Concurrent redeemers: one gets the code, every other a conflict carrying the code.
	race1 := authCode("code3", 3, at.Add(time.Minute))
	race1.AMR, race1.CodeChallenge, race1.Nonce = nil, "", ""
	ok(t, s.CreateAuthCode(ctx, race1), "create raced code")
	const n = 16
	codes := make([]*store.AuthCode, n)
	errs := race(n, func(i int) error {
		var err error
		codes[i], err = s.UseAuthCode(ctx, race1.Hash, at.Add(time.Duration(i+1)*time.Second))
		return err
	})
	w := oneWinner(t, errs, "concurrent redeem")
	for i, c := range codes {
		if c == nil || c.ID != "code3" || !c.UsedAt.Equal(at.Add(time.Duration(w+1)*time.Second)) || c.AMR != nil || c.CodeChallenge != "" {
			t.Fatalf("redeemer %d (winner %d) got %+v", i, w, c)
		}
	}
}

func testConsents(t *testing.T, s store.Store) {
	_, err := s.GetConsent(ctx, "u1", "app")
	is(t, err, store.ErrNotFound, "no consent")
	c := &store.Consent{UserID: "u1", ClientID: "app", Scope: []string{"openid", "email"}, GrantedAt: at}
	ok(t, s.PutConsent(ctx, c), "put")
	got, err := s.GetConsent(ctx, "u1", "app")
	ok(t, err, "get")
	same(t, got, c, "round trip")
	replaced := &store.Consent{UserID: "u1", ClientID: "app", Scope: []string{"openid"}, GrantedAt: at.Add(time.Hour)}
	ok(t, s.PutConsent(ctx, replaced), "replace")
	got, _ = s.GetConsent(ctx, "u1", "app")
	same(t, got, replaced, "replaced")
	ok(t, s.PutConsent(ctx, &store.Consent{UserID: "u1", ClientID: "other", GrantedAt: at}), "second client, no scope")
	got, _ = s.GetConsent(ctx, "u1", "other")
	same(t, got, &store.Consent{UserID: "u1", ClientID: "other", GrantedAt: at}, "empty scope")
	ok(t, s.PutConsent(ctx, &store.Consent{UserID: "u2", ClientID: "app", Scope: []string{"openid"}, GrantedAt: at}), "another user")
	_, err = s.GetConsent(ctx, "u2", "other")
	is(t, err, store.ErrNotFound, "consent of another user")

	ok(t, s.DeleteConsents(ctx, "u1"), "delete")
	for _, client := range []string{"app", "other"} {
		_, err = s.GetConsent(ctx, "u1", client)
		is(t, err, store.ErrNotFound, "deleted consent to "+client)
	}
	_, err = s.GetConsent(ctx, "u2", "app")
	ok(t, err, "another user's consent is kept")
	ok(t, s.DeleteConsents(ctx, "nobody"), "deleting no consents")
}

func testTOTP(t *testing.T, s store.Store) {
	_, err := s.GetTOTP(ctx, "u1")
	is(t, err, store.ErrNotFound, "no factor")
	is(t, s.ConfirmTOTP(ctx, "u1", 100, at), store.ErrNotFound, "confirm without a factor")
	is(t, s.UseTOTPStep(ctx, "u1", 100), store.ErrNotFound, "use without a factor")

	f := &store.TOTPFactor{UserID: "u1", Secret: []byte{0, 0xfe, 'x'}, CreatedAt: at}
	ok(t, s.PutTOTP(ctx, f), "put")
	got, err := s.GetTOTP(ctx, "u1")
	ok(t, err, "get")
	same(t, got, f, "round trip")
	is(t, s.UseTOTPStep(ctx, "u1", 100), store.ErrNotFound, "an unconfirmed factor signs nobody in")

	// Enrolment started again replaces the factor.
	f = &store.TOTPFactor{UserID: "u1", Secret: []byte("second secret"), CreatedAt: at.Add(time.Minute)}
	ok(t, s.PutTOTP(ctx, f), "replace")
	confirmed := at.Add(2 * time.Minute)
	ok(t, s.ConfirmTOTP(ctx, "u1", 1000, confirmed), "confirm")
	got, _ = s.GetTOTP(ctx, "u1")
	same(t, got, &store.TOTPFactor{UserID: "u1", Secret: []byte("second secret"), CreatedAt: at.Add(time.Minute), ConfirmedAt: confirmed, LastStep: 1000}, "confirmed")
	is(t, s.ConfirmTOTP(ctx, "u1", 900, confirmed), store.ErrNotFound, "confirming again (which would move the step back)")

	is(t, s.UseTOTPStep(ctx, "u1", 1000), store.ErrConflict, "the confirming step again")
	is(t, s.UseTOTPStep(ctx, "u1", 999), store.ErrConflict, "an earlier step")
	ok(t, s.UseTOTPStep(ctx, "u1", 1001), "the next step")
	is(t, s.UseTOTPStep(ctx, "u1", 1001), store.ErrConflict, "the same step twice")
	ok(t, s.UseTOTPStep(ctx, "u1", 1005), "a later step")
	if got, _ := s.GetTOTP(ctx, "u1"); got.LastStep != 1005 {
		t.Fatalf("last step %d, want 1005", got.LastStep)
	}
	is(t, s.UseTOTPStep(ctx, "u2", 2000), store.ErrNotFound, "another user has no factor")

	// The same code sent at once from several places is accepted once.
	oneWinner(t, race(16, func(int) error { return s.UseTOTPStep(ctx, "u1", 1006) }), "concurrent step")
	if got, _ := s.GetTOTP(ctx, "u1"); got.LastStep != 1006 {
		t.Fatalf("last step %d, want 1006", got.LastStep)
	}
}

func testRecoveryCodes(t *testing.T, s store.Store) {
	if n, err := s.CountRecoveryCodes(ctx, "u1"); err != nil || n != 0 {
		t.Fatalf("no codes: %d %v", n, err)
	}
	is(t, s.UseRecoveryCode(ctx, "u1", []byte("r1"), at), store.ErrNotFound, "use without codes")
	ok(t, s.SetRecoveryCodes(ctx, "u1", [][]byte{[]byte("r1"), []byte("r2"), []byte("r3")}, at), "set")
	ok(t, s.SetRecoveryCodes(ctx, "u2", [][]byte{[]byte("r1")}, at), "another user's")
	count := func(user string, want int) {
		t.Helper()
		n, err := s.CountRecoveryCodes(ctx, user)
		ok(t, err, "count")
		if n != want {
			t.Fatalf("%s has %d unused codes, want %d", user, n, want)
		}
	}
	count("u1", 3)
	ok(t, s.UseRecoveryCode(ctx, "u1", []byte("r2"), at), "use")
	count("u1", 2)
	is(t, s.UseRecoveryCode(ctx, "u1", []byte("r2"), at), store.ErrNotFound, "use twice")
	is(t, s.UseRecoveryCode(ctx, "u1", []byte("nosuch"), at), store.ErrNotFound, "a wrong code")
	is(t, s.UseRecoveryCode(ctx, "u3", []byte("r1"), at), store.ErrNotFound, "another user's code")
	count("u2", 1)

	// Concurrent uses of one code: one wins.
	errs := race(8, func(int) error { return s.UseRecoveryCode(ctx, "u1", []byte("r3"), at) })
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
		} else if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("concurrent use: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("a recovery code was spent %d times", wins)
	}
	count("u1", 1)

	// New codes replace the old ones, used or not.
	ok(t, s.SetRecoveryCodes(ctx, "u1", [][]byte{[]byte("r2"), []byte("r4")}, at.Add(time.Hour)), "replace")
	count("u1", 2)
	is(t, s.UseRecoveryCode(ctx, "u1", []byte("r1"), at), store.ErrNotFound, "a replaced code")
	ok(t, s.UseRecoveryCode(ctx, "u1", []byte("r2"), at), "a code given again is new")

	// An mfa reset removes the factor and the codes, of that user alone.
	ok(t, s.PutTOTP(ctx, &store.TOTPFactor{UserID: "u1", Secret: []byte("s"), CreatedAt: at}), "factor")
	ok(t, s.PutTOTP(ctx, &store.TOTPFactor{UserID: "u2", Secret: []byte("s"), CreatedAt: at}), "another factor")
	ok(t, s.DeleteSecondFactors(ctx, "u1"), "reset")
	_, err := s.GetTOTP(ctx, "u1")
	is(t, err, store.ErrNotFound, "factor after reset")
	count("u1", 0)
	_, err = s.GetTOTP(ctx, "u2")
	ok(t, err, "another user's factor is kept")
	count("u2", 1)
	ok(t, s.DeleteSecondFactors(ctx, "nobody"), "reset without factors")
}

func testSignInFailures(t *testing.T, s store.Store) {
	const window = 15 * time.Minute
	check := func(key string, when time.Time, wantCount int, wantSince time.Time) {
		t.Helper()
		n, since, err := s.SignInFailures(ctx, key, when, window)
		ok(t, err, "read failures")
		if n != wantCount || !since.Equal(wantSince) {
			t.Fatalf("%s at %v: %d since %v, want %d since %v", key, when, n, since, wantCount, wantSince)
		}
	}
	add := func(key string, when time.Time, wantCount int, wantSince time.Time) {
		t.Helper()
		n, since, err := s.AddSignInFailure(ctx, key, when, window)
		ok(t, err, "add failure")
		if n != wantCount || !since.Equal(wantSince) {
			t.Fatalf("add %s at %v: %d since %v, want %d since %v", key, when, n, since, wantCount, wantSince)
		}
	}
	check("user:u1", at, 0, time.Time{})
	add("user:u1", at, 1, at)
	add("user:u1", at.Add(time.Minute), 2, at)
	add("user:u1", at.Add(window-time.Microsecond), 3, at)
	check("user:u1", at.Add(window-time.Microsecond), 3, at)
	add("ip:192.0.2.1", at.Add(time.Minute), 1, at.Add(time.Minute))
	check("user:u1", at.Add(window), 0, time.Time{}) // the window is over
	check("user:u1", at.Add(time.Minute), 3, at)     // reading counts nothing
	restart := at.Add(window)
	add("user:u1", restart, 1, restart) // a window older than window starts again at 1
	add("user:u1", restart.Add(time.Second), 2, restart)
	check("ip:192.0.2.1", restart, 1, at.Add(time.Minute))

	ok(t, s.ClearSignInFailures(ctx, "user:u1"), "clear")
	check("user:u1", restart.Add(time.Second), 0, time.Time{})
	check("ip:192.0.2.1", restart, 1, at.Add(time.Minute))
	ok(t, s.ClearSignInFailures(ctx, "user:nobody"), "clear a key without failures")

	// Concurrent failures are all counted.
	const n = 20
	errs := race(n, func(i int) error {
		_, _, err := s.AddSignInFailure(ctx, "user:u2", at.Add(time.Duration(i)*time.Microsecond), window)
		return err
	})
	for _, err := range errs {
		ok(t, err, "concurrent add")
	}
	if got, _, _ := s.SignInFailures(ctx, "user:u2", at.Add(time.Minute), window); got != n {
		t.Fatalf("%d concurrent failures counted as %d", n, got)
	}
}

// testSignInPrune: Prune forgets login requests and codes an hour after they expired, browser
// sessions 30 days after they expired or ended, failure counts a day after their window started.
func testSignInPrune(t *testing.T, s store.Store) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, r := range []struct {
		id  string
		exp time.Time
	}{{"lr-old", now.Add(-time.Hour - time.Second)}, {"lr-recent", now.Add(-time.Hour + time.Minute)}, {"lr-live", now.Add(time.Minute)}} {
		ok(t, s.CreateLoginRequest(ctx, &store.LoginRequest{ID: r.id, ClientID: "app", Request: []byte("{}"), BrowserHash: []byte("b"), CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: r.exp}), r.id)
	}
	ok(t, s.CreateAuthCode(ctx, authCode("code-old", 1, now.Add(-time.Hour-time.Second))), "old code")
	ok(t, s.CreateAuthCode(ctx, authCode("code-recent", 2, now.Add(-time.Hour+time.Minute))), "recent code")
	month := 30 * 24 * time.Hour
	ok(t, s.CreateBrowserSession(ctx, browserSession("bs-expired-long-ago", "u1", now.Add(-month-2*time.Hour), time.Hour)), "session")
	ok(t, s.CreateBrowserSession(ctx, browserSession("bs-expired-lately", "u1", now.Add(-month), time.Hour)), "session")
	ok(t, s.CreateBrowserSession(ctx, browserSession("bs-ended-long-ago", "u1", now.Add(-month-2*time.Hour), 365*24*time.Hour)), "session")
	ok(t, s.EndBrowserSession(ctx, "bs-ended-long-ago", "user", now.Add(-month-time.Hour)), "end")
	ok(t, s.CreateBrowserSession(ctx, browserSession("bs-ended-lately", "u1", now.Add(-month-2*time.Hour), 365*24*time.Hour)), "session")
	ok(t, s.EndBrowserSession(ctx, "bs-ended-lately", "user", now.Add(-month+time.Hour)), "end")
	ok(t, s.CreateBrowserSession(ctx, browserSession("bs-live", "u1", now.Add(-time.Hour), 2*time.Hour)), "session")
	for _, id := range []string{"bs-expired-long-ago", "bs-ended-long-ago", "bs-ended-lately", "bs-live"} {
		ok(t, s.AddSessionClient(ctx, id, "app", now.Add(-time.Hour)), "client of "+id)
	}
	_, _, err := s.AddSignInFailure(ctx, "ip:old", now.Add(-25*time.Hour), time.Hour)
	ok(t, err, "old failure")
	_, _, err = s.AddSignInFailure(ctx, "ip:recent", now.Add(-23*time.Hour), time.Hour)
	ok(t, err, "recent failure")

	before, err := s.Prune(ctx, now)
	ok(t, err, "prune")
	if before != 7 {
		t.Errorf("prune removed %d rows, want 7 (a request, a code, two sessions and their clients, a failure count)", before)
	}
	for id, kept := range map[string]bool{"bs-expired-long-ago": false, "bs-ended-long-ago": false, "bs-ended-lately": true, "bs-live": true} {
		clients, err := s.SessionClients(ctx, id)
		ok(t, err, "clients of "+id)
		if kept != (len(clients) == 1) {
			t.Errorf("clients of session %s: kept %v, got %v", id, kept, clients)
		}
	}
	for id, kept := range map[string]bool{"lr-old": false, "lr-recent": true, "lr-live": true} {
		_, err := s.GetLoginRequest(ctx, id)
		if kept != (err == nil) {
			t.Errorf("login request %s: kept %v, err %v", id, kept, err)
		}
	}
	_, err = s.UseAuthCode(ctx, []byte{'c', 1}, now)
	is(t, err, store.ErrNotFound, "pruned code")
	_, err = s.UseAuthCode(ctx, []byte{'c', 2}, now)
	ok(t, err, "recent code kept")
	list, _ := s.ListBrowserSessions(ctx, "u1", time.Time{})
	ids := sessionIDs(list)
	slices.Sort(ids)
	same(t, ids, []string{"bs-ended-lately", "bs-expired-lately", "bs-live"}, "sessions kept")
	for key, want := range map[string]int{"ip:old": 0, "ip:recent": 1} {
		n, _, err := s.SignInFailures(ctx, key, now.Add(-23*time.Hour), 48*time.Hour)
		ok(t, err, "failures")
		if n != want {
			t.Errorf("%s: %d failures after prune, want %d", key, n, want)
		}
	}
	if n, err := s.Prune(ctx, now); err != nil || n != 0 {
		t.Fatalf("prune again: %d %v", n, err)
	}
}

// testSignInSettings: the user, client and role settings sign-in reads round-trip, change, and
// tell caches they changed.
func testSignInSettings(t *testing.T, s store.Store) {
	last, _ := s.LastChangeSeq(ctx)
	changed := func(kind, key string) {
		t.Helper()
		changes, err := s.Changes(ctx, last, 100)
		ok(t, err, "changes")
		if len(changes) == 0 || changes[len(changes)-1].Kind != kind || changes[len(changes)-1].Key != key {
			t.Fatalf("no %s change for %s: %+v", kind, key, changes)
		}
		last = changes[len(changes)-1].Seq
	}

	u := &store.User{ID: "u1", Username: "admin", PasswordChangeRequired: true, MFARequired: true, CreatedAt: at, UpdatedAt: at}
	ok(t, s.CreateUser(ctx, u), "create user")
	changed(store.ChangeUser, "u1")
	got, _ := s.GetUser(ctx, "u1")
	if !got.PasswordChangeRequired || !got.MFARequired {
		t.Fatalf("user settings lost: %+v", got)
	}
	got.PasswordChangeRequired, got.UpdatedAt = false, at.Add(time.Microsecond)
	ok(t, s.UpdateUser(ctx, got), "update user")
	changed(store.ChangeUser, "u1")
	if got, _ := s.GetUser(ctx, "u1"); got.PasswordChangeRequired || !got.MFARequired || !got.UpdatedAt.Equal(at.Add(time.Microsecond)) {
		t.Fatalf("user after update: %+v", got)
	}
	got.MFARequired = false
	ok(t, s.UpdateUser(ctx, got), "update user again")
	if users, _ := s.ListUsers(ctx); len(users) != 1 || users[0].MFARequired || users[0].PasswordChangeRequired {
		t.Fatalf("listed user: %+v", users)
	}

	c := newClient("portal")
	c.ThirdParty, c.PostLogoutRedirectURIs, c.BackchannelLogoutURI, c.RequireMFA = true, []string{"https://portal/bye", "https://portal/"}, "https://portal/bcl", true
	ok(t, s.CreateClient(ctx, c), "create client")
	changed(store.ChangeClient, "portal")
	gc, err := s.GetClient(ctx, "portal")
	ok(t, err, "get client")
	if !gc.ThirdParty || !slices.Equal(gc.PostLogoutRedirectURIs, c.PostLogoutRedirectURIs) || gc.BackchannelLogoutURI != "https://portal/bcl" || !gc.RequireMFA ||
		gc.Name != "portal" || !gc.CreatedAt.Equal(at) || !slices.Equal(gc.RedirectURIs, c.RedirectURIs) {
		t.Fatalf("client settings lost: %+v", gc)
	}
	gc.ThirdParty, gc.PostLogoutRedirectURIs, gc.BackchannelLogoutURI, gc.RequireMFA = false, []string{"https://portal/out"}, "", false
	ok(t, s.UpdateClient(ctx, gc), "update client")
	changed(store.ChangeClient, "portal")
	if gc, _ := s.GetClient(ctx, "portal"); gc.ThirdParty || !slices.Equal(gc.PostLogoutRedirectURIs, []string{"https://portal/out"}) || gc.BackchannelLogoutURI != "" || gc.RequireMFA {
		t.Fatalf("client after update: %+v", gc)
	}
	gc.PostLogoutRedirectURIs, gc.RequireMFA = nil, true
	ok(t, s.UpdateClient(ctx, gc), "update client again")
	if list, _ := s.ListClients(ctx); len(list) != 1 || list[0].PostLogoutRedirectURIs != nil || !list[0].RequireMFA {
		t.Fatalf("listed client: %+v", list)
	}
	ok(t, s.CreateClient(ctx, newClient("plain")), "client without sign-in settings")
	if p, _ := s.GetClient(ctx, "plain"); p.ThirdParty || p.PostLogoutRedirectURIs != nil || p.BackchannelLogoutURI != "" || p.RequireMFA {
		t.Fatalf("a client without settings got some: %+v", p)
	}

	ok(t, s.CreateRole(ctx, &store.Role{Name: "operator", Permissions: []string{"ops"}, RequireMFA: true}), "create role")
	changed(store.ChangeRole, "operator")
	if r, _ := s.GetRole(ctx, "operator"); !r.RequireMFA {
		t.Fatalf("role setting lost: %+v", r)
	}
	ok(t, s.PutRole(ctx, &store.Role{Name: "operator", Permissions: []string{"ops"}}), "put role")
	changed(store.ChangeRole, "operator")
	if r, _ := s.GetRole(ctx, "operator"); r.RequireMFA {
		t.Fatalf("role after put: %+v", r)
	}
	ok(t, s.PutRole(ctx, &store.Role{Name: "operator", Permissions: []string{"ops"}, RequireMFA: true}), "put role again")
	roles, _ := s.ListRoles(ctx)
	for _, r := range roles {
		if r.RequireMFA != (r.Name == "operator") {
			t.Fatalf("listed role %s requires MFA: %v", r.Name, r.RequireMFA)
		}
	}
}

// testDeleteUser: a deleted user leaves no grant, consent, second factor or failure count behind,
// their sessions end, a cache hears of it, and other users keep theirs.
func testDeleteUser(t *testing.T, s store.Store) {
	now := time.Now()
	for _, id := range []string{"u1", "u2"} {
		ok(t, s.CreateUser(ctx, &store.User{ID: id, Username: "name-" + id, Email: id + "@example.com", Roles: []string{"admin"}, CreatedAt: at, UpdatedAt: at}), "create "+id)
		ok(t, s.PutConsent(ctx, &store.Consent{UserID: id, ClientID: "app", Scope: []string{"openid"}, GrantedAt: at}), "consent "+id)
		ok(t, s.PutTOTP(ctx, &store.TOTPFactor{UserID: id, Secret: []byte("sealed"), CreatedAt: at}), "totp "+id)
		ok(t, s.SetRecoveryCodes(ctx, id, [][]byte{[]byte("code-" + id)}, at), "recovery codes "+id)
		ok(t, s.CreateBrowserSession(ctx, browserSession("bs-"+id, id, now, time.Hour)), "session "+id)
		if _, _, err := s.AddSignInFailure(ctx, "user:"+id, now, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := s.LastChangeSeq(ctx)
	ok(t, s.DeleteUser(ctx, "u1"), "delete")
	changes, err := s.Changes(ctx, before, 100)
	ok(t, err, "changes")
	if !slices.ContainsFunc(changes, func(c store.Change) bool { return c.Kind == store.ChangeUser && c.Key == "u1" }) {
		t.Fatalf("no change-feed entry for the deleted user: %+v", changes)
	}
	_, err = s.GetUser(ctx, "u1")
	is(t, err, store.ErrNotFound, "deleted user")
	_, err = s.GetUserByUsername(ctx, "name-u1")
	is(t, err, store.ErrNotFound, "deleted user by username")
	_, err = s.GetConsent(ctx, "u1", "app")
	is(t, err, store.ErrNotFound, "deleted user's consent")
	_, err = s.GetTOTP(ctx, "u1")
	is(t, err, store.ErrNotFound, "deleted user's TOTP factor")
	if n, err := s.CountRecoveryCodes(ctx, "u1"); err != nil || n != 0 {
		t.Fatalf("deleted user's recovery codes: %d %v", n, err)
	}
	if n, _, err := s.SignInFailures(ctx, "user:u1", now, time.Hour); err != nil || n != 0 {
		t.Fatalf("deleted user's failed sign-ins: %d %v", n, err)
	}
	if bs, err := s.GetBrowserSession(ctx, "bs-u1"); err != nil || bs.Active(now.Add(time.Second)) || bs.EndedBy != "deleted" {
		t.Fatalf("deleted user's session must end: %+v %v", bs, err)
	}
	// The username and email are free again, without the old grants.
	ok(t, s.CreateUser(ctx, &store.User{ID: "u3", Username: "name-u1", Email: "u1@example.com", CreatedAt: at, UpdatedAt: at}), "reuse the name")
	if u, _ := s.GetUser(ctx, "u3"); len(u.Roles) != 0 {
		t.Fatalf("a new user inherits nothing: %+v", u)
	}
	is(t, s.DeleteUser(ctx, "u1"), store.ErrNotFound, "delete twice")
	is(t, s.DeleteUser(ctx, "nobody"), store.ErrNotFound, "delete unknown")

	u2, err := s.GetUser(ctx, "u2")
	ok(t, err, "other user")
	if !slices.Equal(u2.Roles, []string{"admin"}) {
		t.Fatalf("other user's grants: %+v", u2)
	}
	_, err = s.GetConsent(ctx, "u2", "app")
	ok(t, err, "other user's consent")
	_, err = s.GetTOTP(ctx, "u2")
	ok(t, err, "other user's factor")
	if n, _ := s.CountRecoveryCodes(ctx, "u2"); n != 1 {
		t.Fatalf("other user's recovery codes: %d", n)
	}
	if bs, _ := s.GetBrowserSession(ctx, "bs-u2"); !bs.Active(now.Add(time.Second)) {
		t.Fatal("other user's session must stay")
	}
	if n, _, _ := s.SignInFailures(ctx, "user:u2", now, time.Hour); n != 1 {
		t.Fatalf("other user's failed sign-ins: %d", n)
	}
}

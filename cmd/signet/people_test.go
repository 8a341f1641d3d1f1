package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/config"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/server"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

// cliStdin runs the command tree like cli, with stdin as standard input.
func cliStdin(t *testing.T, dataDir, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	initStore(t, dataDir)
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append(args, "--data-dir", dataDir, "--log-level", "error"))
	cmd, err := root.ExecuteC()
	if err != nil {
		reportError(cmd, &errOut, err)
	}
	return out.String(), errOut.String(), err
}

// withStore opens dataDir's store for a look (or a setup step) and closes it.
func withStore(t *testing.T, dataDir string, fn func(ctx context.Context, s *server.Server)) {
	t.Helper()
	cfg, _ := config.Defaults()
	cfg.DataDir = dataDir
	s, err := server.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fn(context.Background(), s)
}

// wantRefused checks that a command failed with exit status code and a message naming want.
func wantRefused(t *testing.T, dir string, code int, want string, args ...string) {
	t.Helper()
	_, stderr, err := runCLI(append(args, "--data-dir", dir, "--log-level", "error")...)
	if exitStatus(err) != code || !strings.Contains(stderr, want) {
		t.Errorf("%v: exit %d, want %d with %q\n%s", args, exitStatus(err), code, want, stderr)
	}
}

// TestCLISignInClients: web, spa and native clients need redirect URIs the authorization endpoint
// can use, get the code and refresh grants by default, and carry their sign-in settings.
func TestCLISignInClients(t *testing.T) {
	dir := t.TempDir()
	initStore(t, dir)
	var web clientView
	cliJSON(t, dir, &web, "client", "create", "--name", "portal", "--type", "web", "--redirect-uri", "https://portal.example.com/callback")
	if !slices.Equal(web.GrantTypes, []string{"authorization_code", "refresh_token"}) || web.AuthMethod != "client_secret_basic" || web.ClientSecret == "" ||
		!slices.Equal(web.RedirectURIs, []string{"https://portal.example.com/callback"}) || web.ThirdParty || web.RequireMFA ||
		web.PostLogoutRedirectURIs == nil || len(web.PostLogoutRedirectURIs) != 0 || web.BackchannelLogoutURI != "" {
		t.Fatalf("web client: %+v", web)
	}
	var native clientView
	cliJSON(t, dir, &native, "client", "create", "--name", "cli-app", "--type", "native", "--redirect-uri", "com.example.app:/callback", "--redirect-uri", "http://127.0.0.1/callback")
	if native.AuthMethod != "none" || native.ClientSecret != "" || !slices.Equal(native.GrantTypes, []string{"authorization_code", "refresh_token"}) {
		t.Fatalf("native client: %+v", native)
	}
	var api clientView
	cliJSON(t, dir, &api, "client", "create", "--name", "orders-api")
	if !slices.Equal(api.GrantTypes, []string{"client_credentials"}) {
		t.Fatalf("api client grants: %v", api.GrantTypes)
	}
	var partner clientView
	cliJSON(t, dir, &partner, "client", "create", "--name", "partner", "--type", "spa", "--redirect-uri", "http://localhost:5173/cb",
		"--third-party", "--require-mfa", "--post-logout-redirect-uri", "http://localhost:5173/", "--backchannel-logout-uri", "https://partner.example.com/bcl")
	if !partner.ThirdParty || !partner.RequireMFA || !slices.Equal(partner.PostLogoutRedirectURIs, []string{"http://localhost:5173/"}) ||
		partner.BackchannelLogoutURI != "https://partner.example.com/bcl" || partner.AuthMethod != "none" {
		t.Fatalf("spa client with sign-in settings: %+v", partner)
	}
	withStore(t, dir, func(ctx context.Context, s *server.Server) {
		c, err := s.Store.GetClient(ctx, partner.ClientID)
		if err != nil || !c.ThirdParty || !c.RequireMFA || c.BackchannelLogoutURI != "https://partner.example.com/bcl" || !slices.Equal(c.PostLogoutRedirectURIs, []string{"http://localhost:5173/"}) {
			t.Fatalf("stored client: %+v %v", c, err)
		}
	})

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--type", "spa"}, "--redirect-uri is required for a spa client"},
		{[]string{"--type", "native"}, "--redirect-uri is required for a native client"},
		{[]string{"--type", "web", "--redirect-uri", "http://portal.example.com/cb"}, "must use https"},
		{[]string{"--type", "web", "--redirect-uri", "https://portal.example.com/cb#x"}, "fragment"},
		{[]string{"--type", "web", "--redirect-uri", "https://u:p@portal.example.com/cb"}, "userinfo"},
		{[]string{"--type", "web", "--redirect-uri", "/cb"}, "not an absolute URI"},
		{[]string{"--type", "native", "--redirect-uri", "http://app.example.com/cb"}, "loopback"},
		{[]string{"--redirect-uri", "https://portal.example.com/cb"}, "signs no one in"},
		{[]string{"--grant", "authorization_code"}, "signs no one in"},
		{[]string{"--type", "web", "--redirect-uri", "https://a.example/cb", "--post-logout-redirect-uri", "javascript:alert(1)"}, "--post-logout-redirect-uri"},
		{[]string{"--type", "web", "--redirect-uri", "https://a.example/cb", "--backchannel-logout-uri", "ftp://a.example/bcl"}, "absolute http or https"},
		{[]string{"--type", "web", "--redirect-uri", "https://a.example/cb", "--backchannel-logout-uri", "https://a.example/bcl#x"}, "fragment"},
	} {
		wantRefused(t, dir, exitUsage, c.want, append([]string{"client", "create", "--name", "bad"}, c.args...)...)
	}

	// update: the sign-in settings change and the rest stays.
	var got clientView
	cliJSON(t, dir, &got, "client", "update", partner.ClientID, "--first-party", "--no-require-mfa", "--backchannel-logout-uri", "",
		"--add-post-logout-redirect-uri", "https://partner.example.com/bye", "--add-redirect-uri", "https://partner.example.com/cb")
	if got.ThirdParty || got.RequireMFA || got.BackchannelLogoutURI != "" ||
		!slices.Equal(got.PostLogoutRedirectURIs, []string{"http://localhost:5173/", "https://partner.example.com/bye"}) ||
		!slices.Equal(got.RedirectURIs, []string{"http://localhost:5173/cb", "https://partner.example.com/cb"}) {
		t.Fatalf("update: %+v", got)
	}
	cliJSON(t, dir, &got, "client", "update", partner.ClientID, "--third-party", "--require-mfa", "--remove-post-logout-redirect-uri", "http://localhost:5173/",
		"--backchannel-logout-uri", "https://partner.example.com/bcl2")
	if !got.ThirdParty || !got.RequireMFA || got.BackchannelLogoutURI != "https://partner.example.com/bcl2" || !slices.Equal(got.PostLogoutRedirectURIs, []string{"https://partner.example.com/bye"}) {
		t.Fatalf("update back: %+v", got)
	}
	wantRefused(t, dir, exitUsage, "not both", "client", "update", partner.ClientID, "--third-party", "--first-party")
	wantRefused(t, dir, exitUsage, "needs at least one redirect URI", "client", "update", native.ClientID,
		"--remove-redirect-uri", "com.example.app:/callback", "--remove-redirect-uri", "http://127.0.0.1/callback")
	wantRefused(t, dir, exitUsage, "must use https", "client", "update", web.ClientID, "--add-redirect-uri", "http://portal.example.com/cb")

	// show and list print the sign-in settings.
	var shown clientView
	cliJSON(t, dir, &shown, "client", "show", partner.ClientID)
	if shown.ClientID != partner.ClientID || !shown.ThirdParty || !shown.RequireMFA || shown.BackchannelLogoutURI != "https://partner.example.com/bcl2" {
		t.Fatalf("client show: %+v", shown)
	}
	if out, err := cli(t, dir, "client", "show", partner.ClientID); err != nil || !strings.Contains(out, "third party (asks consent): true") || !strings.Contains(out, "https://partner.example.com/bye") {
		t.Fatalf("client show text: %v\n%s", err, out)
	}
	wantRefused(t, dir, exitNegative, "no client with ID", "client", "show", "nope")
	var list []clientView
	cliJSON(t, dir, &list, "client", "list")
	i := slices.IndexFunc(list, func(c clientView) bool { return c.ClientID == partner.ClientID })
	if i < 0 || !list[i].ThirdParty || !slices.Equal(list[i].PostLogoutRedirectURIs, []string{"https://partner.example.com/bye"}) {
		t.Fatalf("client list: %+v", list)
	}
}

// TestCLIUsersPasswords: a created user gets a generated password (shown once, to be changed at
// the first sign-in) or one read from standard input; both are argon2id hashes.
func TestCLIUsersPasswords(t *testing.T) {
	dir := t.TempDir()
	initStore(t, dir)
	var gen userView
	cliJSON(t, dir, &gen, "user", "create", "--username", "dana", "--email", "dana@example.com", "--name", "Dana Lee", "--role", "support", "--require-mfa")
	if len(gen.Password) < 12 || !gen.MustChangePassword || !gen.MFARequired || gen.Email != "dana@example.com" || gen.DisplayName != "Dana Lee" ||
		!slices.Equal(gen.Roles, []string{"support"}) || !gen.HasPassword {
		t.Fatalf("user create: %+v", gen)
	}
	out, stderr, err := cliStdin(t, dir, "correct horse battery\n", "user", "create", "--username", "sam", "--password-stdin", "--json")
	var sam userView
	if err != nil || jsonInto(out, &sam) != nil || sam.Password != "" || sam.MustChangePassword || !sam.HasPassword {
		t.Fatalf("--password-stdin: %v %s\n%s", err, stderr, out)
	}
	out, _, err = cliStdin(t, dir, "another long password", "user", "create", "--username", "kim", "--password-stdin", "--must-change-password")
	if err != nil || !strings.Contains(out, "choose a new password at their first sign-in") || strings.Contains(out, "another long password") {
		t.Fatalf("--password-stdin --must-change-password: %v\n%s", err, out)
	}
	withStore(t, dir, func(ctx context.Context, s *server.Server) {
		for name, pw := range map[string]string{"dana": gen.Password, "sam": "correct horse battery", "kim": "another long password"} {
			u, err := s.Store.GetUserByUsername(ctx, name)
			if err != nil || !strings.HasPrefix(u.PasswordHash, "$argon2id$") || !secrets.VerifyPassword(u.PasswordHash, pw) {
				t.Errorf("%s: the stored hash is not an argon2id hash of the password: %v", name, err)
			}
			if want := name != "sam"; u.PasswordChangeRequired != want {
				t.Errorf("%s: PasswordChangeRequired %v, want %v", name, u.PasswordChangeRequired, want)
			}
		}
		if u, _ := s.Store.GetUserByUsername(ctx, "dana"); !u.MFARequired || u.Email != "dana@example.com" || u.DisplayName != "Dana Lee" {
			t.Errorf("dana as stored: %+v", u)
		}
	})
	if _, _, err := cliStdin(t, dir, "short\n", "user", "create", "--username", "lee", "--password-stdin"); exitStatus(err) != exitUsage || !strings.Contains(err.Error(), "at least 12 characters") {
		t.Errorf("short password: %v", err)
	}
	if _, _, err := cliStdin(t, dir, "", "user", "create", "--username", "lee", "--password-stdin"); exitStatus(err) != exitUsage || !strings.Contains(err.Error(), "no password") {
		t.Errorf("empty standard input: %v", err)
	}
	wantRefused(t, dir, exitUsage, "use one of", "user", "create", "--username", "lee", "--password-stdin", "--generate-password")
	wantRefused(t, dir, exitUsage, "--username is required", "user", "create")
	wantRefused(t, dir, exitNegative, "already exists", "user", "create", "--username", "dana")
	var none userView
	cliJSON(t, dir, &none, "user", "create", "--username", "bot-owner", "--no-password")
	if none.HasPassword || none.Password != "" || none.MustChangePassword {
		t.Fatalf("--no-password: %+v", none)
	}

	// set-password: --temporary makes the next sign-in ask for a new one; without it, nothing is pending.
	// It also signs sam out of every browser, revoking what the session issued.
	withStore(t, dir, func(ctx context.Context, s *server.Server) {
		u, _ := s.Store.GetUserByUsername(ctx, "sam")
		now := time.Now()
		if err := s.Store.CreateBrowserSession(ctx, &store.BrowserSession{ID: "bs-sam", SecretHash: []byte("h"), UserID: u.ID, CreatedAt: now,
			AuthTime: now, AMR: []string{store.AMRPassword}, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	})
	var set userView
	cliJSON(t, dir, &set, "user", "set-password", "sam", "--generate-password", "--temporary")
	if !set.MustChangePassword || len(set.Password) < 12 || set.SessionsEnded == nil || *set.SessionsEnded != 1 {
		t.Fatalf("set-password --temporary: %+v", set)
	}
	withStore(t, dir, func(ctx context.Context, s *server.Server) {
		if b, _ := s.Store.GetBrowserSession(ctx, "bs-sam"); b == nil || b.EndedAt.IsZero() || b.EndedBy != "password set by operator" {
			t.Errorf("sam's session after set-password: %+v", b)
		}
		revs, _ := s.Store.ListRevocations(ctx, time.Now())
		if !slices.ContainsFunc(revs, func(r store.Revocation) bool { return r.Kind == store.RevokeSession && r.Value == "bs-sam" }) {
			t.Errorf("sam's session tokens were not revoked: %+v", revs)
		}
	})
	if _, _, err := cliStdin(t, dir, "a brand new password\n", "user", "set-password", "sam", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	withStore(t, dir, func(ctx context.Context, s *server.Server) {
		if u, _ := s.Store.GetUserByUsername(ctx, "sam"); u.PasswordChangeRequired || !secrets.VerifyPassword(u.PasswordHash, "a brand new password") {
			t.Errorf("set-password without --temporary: %+v", u)
		}
	})
	wantRefused(t, dir, exitNegative, "no user with ID or username", "user", "set-password", "nobody", "--generate-password")
}

func jsonInto(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// TestCLIUserLockDeleteAndMFAReset: lock signs the user out of every browser (the sessions' tokens
// revoked), unlock lets them in; mfa reset removes the factor and codes; delete takes the user and
// what is kept for them. Every change is audited.
func TestCLIUserLockDeleteAndMFAReset(t *testing.T) {
	dir := t.TempDir()
	var dana userView
	cliJSON(t, dir, &dana, "user", "create", "--username", "dana")
	session := func(id string) {
		withStore(t, dir, func(ctx context.Context, s *server.Server) {
			now := time.Now()
			if err := s.Store.CreateBrowserSession(ctx, &store.BrowserSession{ID: id, SecretHash: []byte("h"), UserID: dana.ID, CreatedAt: now,
				AuthTime: now, AMR: []string{store.AMRPassword}, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		})
	}
	ended := func(id, by string) {
		t.Helper()
		withStore(t, dir, func(ctx context.Context, s *server.Server) {
			bs, err := s.Store.GetBrowserSession(ctx, id)
			if err != nil || bs.Active(time.Now()) || bs.EndedBy != by {
				t.Errorf("session %s must have ended (by %s): %+v %v", id, by, bs, err)
			}
			revs, _ := s.Store.ListRevocations(ctx, time.Now())
			if !slices.ContainsFunc(revs, func(r store.Revocation) bool { return r.Kind == store.RevokeSession && r.Value == id }) {
				t.Errorf("the tokens of session %s are not revoked: %+v", id, revs)
			}
		})
	}
	session("bs-1")
	var locked struct {
		userView
		SessionsEnded int `json:"sessions_ended"`
	}
	cliJSON(t, dir, &locked, "user", "lock", "dana")
	if !locked.Locked || locked.SessionsEnded != 1 {
		t.Fatalf("user lock: %+v", locked)
	}
	ended("bs-1", "locked")
	var list []userView
	cliJSON(t, dir, &list, "user", "list")
	if i := slices.IndexFunc(list, func(u userView) bool { return u.Username == "dana" }); i < 0 || !list[i].Locked || list[i].TOTPEnrolled == nil {
		t.Fatalf("user list after lock: %+v", list)
	}
	cliJSON(t, dir, &locked, "user", "unlock", dana.ID)
	if locked.Locked {
		t.Fatalf("user unlock: %+v", locked)
	}
	wantRefused(t, dir, exitNegative, "no user with ID or username", "user", "lock", "nobody")
	wantRefused(t, dir, exitNegative, "no user with ID or username", "user", "unlock", "nobody")
	wantRefused(t, dir, exitUsage, "accepts 1 arg", "user", "lock")

	// mfa reset: the factor and the recovery codes go; user list shows it.
	withStore(t, dir, func(ctx context.Context, s *server.Server) {
		now := time.Now()
		if err := s.Store.PutTOTP(ctx, &store.TOTPFactor{UserID: dana.ID, Secret: []byte("sealed"), CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if err := s.Store.ConfirmTOTP(ctx, dana.ID, 1, now); err != nil {
			t.Fatal(err)
		}
		if err := s.Store.SetRecoveryCodes(ctx, dana.ID, [][]byte{[]byte("c1"), []byte("c2")}, now); err != nil {
			t.Fatal(err)
		}
	})
	cliJSON(t, dir, &list, "user", "list")
	if i := slices.IndexFunc(list, func(u userView) bool { return u.Username == "dana" }); i < 0 || list[i].TOTPEnrolled == nil || !*list[i].TOTPEnrolled {
		t.Fatalf("user list must show the enrolled factor: %+v", list)
	}
	if out, err := cli(t, dir, "user", "list"); err != nil || !strings.Contains(out, "MFA REQUIRED") || !strings.Contains(out, "TOTP") || !strings.Contains(out, "MUST CHANGE PASSWORD") {
		t.Fatalf("user list text: %v\n%s", err, out)
	}
	if _, err := cli(t, dir, "user", "mfa", "reset", "dana"); err != nil {
		t.Fatal(err)
	}
	withStore(t, dir, func(ctx context.Context, s *server.Server) {
		if _, err := s.Store.GetTOTP(ctx, dana.ID); err == nil {
			t.Error("the TOTP factor is still there after mfa reset")
		}
		if n, _ := s.Store.CountRecoveryCodes(ctx, dana.ID); n != 0 {
			t.Errorf("%d recovery codes left after mfa reset", n)
		}
	})
	wantRefused(t, dir, exitNegative, "no user with ID or username", "user", "mfa", "reset", "nobody")

	// delete: a token about her stops working, the session ends, the user is gone.
	var app clientView
	cliJSON(t, dir, &app, "client", "create", "--name", "ops")
	initStore(t, dir)
	tok, _, err := runCLI("token", "issue", "--client", app.ClientID, "--user", "dana", "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	tok = strings.TrimSpace(tok)
	session("bs-2")
	var deleted map[string]any
	cliJSON(t, dir, &deleted, "user", "delete", "dana")
	if deleted["deleted"] != dana.ID || deleted["sessions_ended"] != float64(1) {
		t.Fatalf("user delete: %v", deleted)
	}
	ended("bs-2", "deleted")
	if out, _, err := runCLI("token", "explain", tok, "--data-dir", dir); exitStatus(err) != exitNegative || !strings.HasPrefix(out, "INACTIVE") {
		t.Errorf("a token about a deleted user: exit %d\n%s", exitStatus(err), out)
	}
	withStore(t, dir, func(ctx context.Context, s *server.Server) {
		if _, err := s.Store.GetUserByUsername(ctx, "dana"); err == nil {
			t.Error("the deleted user is still there")
		}
	})
	wantRefused(t, dir, exitNegative, "no user with ID or username", "user", "delete", "dana")

	// Each change is in the audit log, by the operator.
	var events []map[string]any
	cliJSON(t, dir, &events, "audit", "list", "--subject", dana.ID)
	var seen []string
	for _, e := range events {
		d, _ := e["details"].(map[string]any)
		seen = append(seen, e["type"].(string)+":"+str(d["action"])+str(d["by"]))
	}
	for _, want := range []string{audit.TypeUserChanged + ":created", audit.TypeUserChanged + ":locked", audit.TypeBrowserSessionEnd + ":locked",
		audit.TypeUserChanged + ":unlocked", audit.TypeMFAChanged + ":reset by operator", audit.TypeUserChanged + ":deleted", audit.TypeBrowserSessionEnd + ":deleted"} {
		if !slices.Contains(seen, want) {
			t.Errorf("the audit log lacks %s: %v", want, seen)
		}
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// TestCLIRoleRequireMFA: a role can require a second factor of its holders, built-in ones too.
func TestCLIRoleRequireMFA(t *testing.T) {
	dir := t.TempDir()
	var r roleView
	cliJSON(t, dir, &r, "role", "create", "finance", "--description", "pays invoices", "--require-mfa")
	if !r.RequireMFA {
		t.Fatalf("role create --require-mfa: %+v", r)
	}
	cliJSON(t, dir, &r, "role", "update", "admin", "--require-mfa")
	if !r.RequireMFA || !r.BuiltIn || len(r.Permissions) == 0 {
		t.Fatalf("role update admin: %+v", r)
	}
	cliJSON(t, dir, &r, "role", "update", "finance", "--no-require-mfa", "--description", "pays")
	if r.RequireMFA || r.Description != "pays" {
		t.Fatalf("role update finance: %+v", r)
	}
	cliJSON(t, dir, &r, "role", "show", "admin")
	if !r.RequireMFA {
		t.Fatalf("role show admin: %+v", r)
	}
	withStore(t, dir, func(ctx context.Context, s *server.Server) {
		if role, err := s.Store.GetRole(ctx, "admin"); err != nil || !role.RequireMFA || !role.BuiltIn {
			t.Errorf("stored admin role: %+v %v", role, err)
		}
	})
	wantRefused(t, dir, exitUsage, "nothing to change", "role", "update", "finance")
	wantRefused(t, dir, exitUsage, "not both", "role", "update", "finance", "--require-mfa", "--no-require-mfa")
	wantRefused(t, dir, exitNegative, `no role "nope"`, "role", "update", "nope", "--require-mfa")
	wantRefused(t, dir, exitNegative, `no role "nope"`, "role", "show", "nope")
}

// TestFirstStartAdminMustChangePassword: the admin that the first `serve` creates signs in with
// the printed password and must choose a new one.
func TestFirstStartAdminMustChangePassword(t *testing.T) {
	dir := t.TempDir()
	banner := serveOnce(t, dir)
	var pw string
	for _, l := range strings.Split(banner, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "password:"); ok {
			pw = strings.TrimSpace(rest)
		}
	}
	withStore(t, dir, func(ctx context.Context, s *server.Server) {
		u, err := s.Store.GetUserByUsername(ctx, "admin")
		if err != nil || !u.PasswordChangeRequired || !secrets.VerifyPassword(u.PasswordHash, pw) || !slices.Contains(u.Roles, "admin") {
			t.Fatalf("bootstrap admin (printed password %q): %+v %v", pw, u, err)
		}
	})
	var list []userView
	cliJSON(t, dir, &list, "user", "list")
	if len(list) != 1 || !list[0].MustChangePassword {
		t.Fatalf("user list: %+v", list)
	}
}

// TestCLIUsersSignInUntilDeleted: a user and a web client made with the CLI sign in through the
// hosted login of a running server; once `user delete` ran, the same password opens nothing.
func TestCLIUsersSignInUntilDeleted(t *testing.T) {
	dir := t.TempDir()
	issuer := startServer(t, dir)
	const callback = "http://127.0.0.1:9/callback"
	var app clientView
	cliJSON(t, dir, &app, "client", "create", "--name", "portal", "--type", "web", "--redirect-uri", callback)
	if _, _, err := cliStdin(t, dir, "correct horse battery\n", "user", "create", "--username", "dana", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	signIn := func() *testenv.Page {
		b := (&testenv.Env{T: t, URL: issuer}).NewBrowser()
		sum := sha256.Sum256([]byte("a-verifier-of-at-least-43-characters-0123456789"))
		q := url.Values{"response_type": {"code"}, "client_id": {app.ClientID}, "redirect_uri": {callback}, "scope": {"openid"}, "state": {"s1"},
			"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
		p := b.Open(issuer + "/oauth/v2/authorize?" + q.Encode())
		if !p.HasForm("/ui/login/password") {
			t.Fatalf("no login form: %d %s", p.Status, p.Text())
		}
		return b.Submit(p, "/ui/login/password", map[string]string{"username": "dana", "password": "correct horse battery"})
	}
	var p *testenv.Page
	testenv.Eventually(t, "the server sees the new client and user", func() bool {
		p = signIn()
		return p.Location != nil
	})
	if p.Location.Query().Get("code") == "" || p.Location.Query().Get("state") != "s1" {
		t.Fatalf("sign-in redirect: %s", p.Location)
	}
	if _, err := cli(t, dir, "user", "delete", "dana"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the server sees the user deleted", func() bool {
		p = signIn()
		return p.Location == nil
	})
	if !strings.Contains(p.Text(), "The username or password is incorrect.") {
		t.Fatalf("a deleted user's sign-in: %d %s", p.Status, p.Text())
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/config"
	"github.com/signet-id/signet/internal/server"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/tokens"
)

// cli runs the real command tree against dataDir and returns stdout and the error. The data
// directory is first set up as `signet serve` would (only serve creates a store).
func cli(t *testing.T, dataDir string, args ...string) (string, error) {
	t.Helper()
	initStore(t, dataDir)
	out, _, err := runCLI(append(args, "--data-dir", dataDir, "--log-level", "error")...)
	return out, err
}

// runCLI runs the command tree with exactly these arguments and returns stdout, stderr and the
// exit status main would give.
func runCLI(args ...string) (stdout, stderr string, err error) {
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err != nil {
		reportError(cmd, &errOut, err)
	}
	return out.String(), errOut.String(), err
}

// initStore creates the store in dataDir as `signet serve` does on its first start, once.
func initStore(t *testing.T, dataDir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dataDir, "signet.db")); err == nil {
		return
	}
	cfg, err := config.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = dataDir
	s, err := server.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func cliJSON(t *testing.T, dataDir string, v any, args ...string) {
	t.Helper()
	out, err := cli(t, dataDir, append(args, "--json")...)
	if err != nil && exitStatus(err) != exitNegative {
		t.Fatalf("%v: %v", args, err)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%v: output is not JSON: %v\n%s", args, err, out)
	}
}

func TestCLISetsUpClientsAccountsAndKeyFiles(t *testing.T) {
	dir := t.TempDir()
	var api map[string]any
	cliJSON(t, dir, &api, "client", "create", "--name", "billing-api")
	apiID, _ := api["client_id"].(string)
	if apiID == "" || api["client_secret"] == "" || api["auth_method"] != "client_secret_basic" || api["token_format"] != "jwt" {
		t.Fatalf("client create: %v", api)
	}
	var app map[string]any
	cliJSON(t, dir, &app, "client", "create", "--name", "app", "--token-format", "opaque", "--alg", "EdDSA", "--audience", apiID)
	if app["token_format"] != "opaque" || app["alg"] != "EdDSA" {
		t.Fatalf("client create options: %v", app)
	}
	if _, err := cli(t, dir, "client", "create", "--name", "x", "--audience", "nope"); err == nil || !strings.Contains(err.Error(), "no client has this ID") {
		t.Fatalf("unknown audience: %v", err)
	}
	if _, err := cli(t, dir, "client", "create", "--name", "x", "--grant", "password"); err == nil || !strings.Contains(err.Error(), "supported grants") {
		t.Fatalf("unknown grant: %v", err)
	}

	var sa map[string]any
	cliJSON(t, dir, &sa, "serviceaccount", "create", "--name", "ci-bot", "--role", "introspector")
	if _, err := cli(t, dir, "serviceaccount", "create", "--name", "ci-bot"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate name: %v", err)
	}
	keyPath := filepath.Join(dir, "key.json")
	var key map[string]any
	cliJSON(t, dir, &key, "serviceaccount", "key", "create", "--serviceaccount", "ci-bot", "--out", keyPath)
	fi, err := os.Stat(keyPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi, err)
	}
	var kf map[string]string
	b, _ := os.ReadFile(keyPath)
	json.Unmarshal(b, &kf)
	if kf["type"] != "serviceaccount" || kf["userId"] != sa["id"] || kf["keyId"] != key["key_id"] || !strings.HasPrefix(kf["key"], "-----BEGIN RSA PRIVATE KEY-----") {
		t.Fatalf("ZITADEL key file shape: %v", kf)
	}
	if _, err := cli(t, dir, "serviceaccount", "key", "create", "--serviceaccount", "ci-bot", "--out", keyPath); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("overwrite must need --force: %v", err)
	}
	if _, err := cli(t, dir, "client", "key", "create", "--client", apiID, "--out", filepath.Join(dir, "app.json")); err == nil || !strings.Contains(err.Error(), "private_key_jwt") {
		t.Fatalf("key file for a secret client: %v", err)
	}
	if _, err := cli(t, dir, "role", "grant", "nosuch", "--client", apiID); err == nil || !strings.Contains(err.Error(), `no role "nosuch"`) {
		t.Fatalf("unknown role: %v", err)
	}
	if _, err := cli(t, dir, "role", "grant", "admin", "--client", apiID); err != nil {
		t.Fatal(err)
	}
	var clients []map[string]any
	cliJSON(t, dir, &clients, "client", "list")
	if len(clients) != 2 {
		t.Fatalf("client list: %v", clients)
	}
}

func TestCLITokenIssueExplainRevoke(t *testing.T) {
	dir := t.TempDir()
	var api map[string]any
	cliJSON(t, dir, &api, "client", "create", "--name", "api", "--token-format", "opaque")
	var tok map[string]any
	cliJSON(t, dir, &tok, "token", "issue", "--client", api["client_id"].(string), "--scope", "read")
	raw := tok["access_token"].(string)
	if !strings.HasPrefix(raw, "sgn_at_") || tok["scope"] != "read" {
		t.Fatalf("token issue: %v", tok)
	}
	var ex map[string]any
	cliJSON(t, dir, &ex, "token", "explain", raw)
	if ex["active"] != true {
		t.Fatalf("explain before revoke: %v", ex)
	}
	if _, err := cli(t, dir, "token", "revoke", raw, "--reason", "ticket 42"); err != nil {
		t.Fatal(err)
	}
	cliJSON(t, dir, &ex, "token", "explain", raw)
	if ex["active"] != false || ex["reason"] != "revoked" || !strings.Contains(ex["detail"].(string), "ticket 42") {
		t.Fatalf("explain after revoke: %v", ex)
	}
	cliJSON(t, dir, &ex, "token", "explain", "not-a-token")
	if ex["active"] != false || ex["reason"] != "malformed" {
		t.Fatalf("explain garbage: %v", ex)
	}
}

func TestCLIKeysRotate(t *testing.T) {
	dir := t.TempDir()
	var before, after []map[string]any
	cliJSON(t, dir, &before, "keys", "list")
	var rotated map[string]string
	cliJSON(t, dir, &rotated, "keys", "rotate")
	cliJSON(t, dir, &after, "keys", "list")
	// The default algorithm (ES256) rotates; the RS256 pair beside it stays as it was.
	activeBefore := ""
	for _, k := range before {
		if k["state"] == "active" && k["alg"] == "ES256" {
			activeBefore = k["id"].(string)
		}
	}
	if rotated["active"] == "" || rotated["active"] == activeBefore || rotated["alg"] != "ES256" || len(after) != len(before)+1 {
		t.Fatalf("rotate: before %v, after %v, rotated %v", before, after, rotated)
	}
}

// TestCLIPolicyImpersonationAudit walks the operator's view of token exchange: add a rule, check
// it, flip the kill switch, and verify the audit log that recorded all of it.
func TestCLIPolicyImpersonationAudit(t *testing.T) {
	dir := t.TempDir()
	var api, spa map[string]any
	cliJSON(t, dir, &api, "client", "create", "--name", "orders-api")
	cliJSON(t, dir, &spa, "client", "create", "--name", "admin-spa", "--type", "spa", "--grant", "urn:ietf:params:oauth:grant-type:token-exchange", "--redirect-uri", "https://admin.example.com/callback")
	apiID, spaID := api["client_id"].(string), spa["client_id"].(string)
	if _, err := cli(t, dir, "role", "list"); err != nil {
		t.Fatal(err)
	}
	var sam, dana map[string]any
	cliJSON(t, dir, &sam, "user", "create", "--username", "sam", "--role", "support", "--generate-password")
	cliJSON(t, dir, &dana, "user", "create", "--username", "dana")
	if _, err := cli(t, dir, "policy", "add", "--name", "support", "--mode", "impersonation", "--actor-role", "support",
		"--subject-user", "*", "--client", spaID, "--audience", apiID, "--scope", "read", "--max-ttl", "10m", "--require-reason"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli(t, dir, "policy", "add", "--name", "bad", "--mode", "impersonate"); err == nil || !strings.Contains(err.Error(), "mode") {
		t.Fatalf("invalid rule: %v", err)
	}
	var check map[string]any
	cliJSON(t, dir, &check, "policy", "check", "--actor", "sam", "--subject", "dana", "--client", spaID, "--scope", "read", "--reason", "ticket 1")
	if check["allowed"] != true || check["rule"] != "support" || check["ttl"] != "10m0s" {
		t.Fatalf("check: %v", check)
	}
	check = nil
	out, err := cli(t, dir, "policy", "check", "--actor", "dana", "--subject", "sam", "--client", spaID, "--json")
	if ec := (*exitCode)(nil); !errors.As(err, &ec) || ec.code != 1 || json.Unmarshal([]byte(out), &check) != nil {
		t.Fatalf("a denied check exits 1 with its answer: %v %q", err, out)
	}
	if check["allowed"] != false || check["error"] != "unauthorized_client" || !strings.Contains(check["description"].(string), "is not among its actors") {
		t.Fatalf("check deny: %v", check)
	}
	var rules []map[string]any
	cliJSON(t, dir, &rules, "policy", "list")
	if len(rules) != 1 || rules[0]["name"] != "support" {
		t.Fatalf("list: %v", rules)
	}
	var state map[string]any
	cliJSON(t, dir, &state, "impersonation", "disable", "--reason", "incident 7")
	cliJSON(t, dir, &state, "impersonation", "list")
	if state["impersonation_disabled"] != true {
		t.Fatalf("kill switch: %v", state)
	}
	cliJSON(t, dir, &state, "impersonation", "enable")
	var events []map[string]any
	cliJSON(t, dir, &events, "audit", "list", "--type", "impersonation.disabled")
	if len(events) != 1 || !strings.Contains(string(mustJSON(events[0]["details"])), "incident 7") {
		t.Fatalf("audit list: %v", events)
	}
	var verify map[string]any
	cliJSON(t, dir, &verify, "audit", "verify")
	// two clients and two users created, policy add, disable, enable
	if verify["intact"] != true || verify["events"].(float64) != 7 {
		t.Fatalf("audit verify: %v", verify)
	}
	var changes []map[string]any
	cliJSON(t, dir, &changes, "audit", "list", "--type", "user.changed")
	if len(changes) != 2 || changes[0]["subject"] != sam["id"] || !strings.HasPrefix(changes[0]["actor"].(string), "cli") ||
		!strings.Contains(string(mustJSON(changes[0]["details"])), `"action":"created"`) {
		t.Fatalf("user changes are audited with the operator: %v", changes)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestCLIExplainsAndRevokesRefreshTokens: explain shows a refresh token's grant and state; revoke
// takes the whole grant, and explain then says so.
func TestCLIExplainsAndRevokesRefreshTokens(t *testing.T) {
	dir := t.TempDir()
	var api, user map[string]any
	cliJSON(t, dir, &api, "client", "create", "--name", "api")
	cliJSON(t, dir, &user, "user", "create", "--username", "dana")
	cfg, err := config.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = dir
	s, err := server.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	raw, err := s.Tokens.IssueRefresh(context.Background(), &tokens.Access{Subject: user["id"].(string), SubjectKind: store.KindUser, ClientID: api["client_id"].(string),
		Scope: []string{"read"}, IssuedAt: now, GrantID: "gr-cli"}, now.Add(time.Hour))
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	var ex map[string]any
	cliJSON(t, dir, &ex, "token", "explain", raw)
	claims, _ := ex["claims"].(map[string]any)
	if ex["active"] != true || claims["token_kind"] != "refresh_token" || claims["grant"] != "gr-cli" {
		t.Fatalf("explain: %v", ex)
	}
	var rev map[string]any
	cliJSON(t, dir, &rev, "token", "revoke", raw, "--reason", "laptop lost")
	if rev["kind"] != "grant" || rev["value"] != "gr-cli" {
		t.Fatalf("revoking a refresh token revokes its grant: %v", rev)
	}
	cliJSON(t, dir, &ex, "token", "explain", raw)
	if ex["active"] != false || ex["reason"] != "revoked" {
		t.Fatalf("explain after revoke: %v", ex)
	}
}

// TestCLIAdminToken: `token issue --admin` is how a script gets a token the admin API accepts
// (audience <issuer>/admin/v1), and only for a subject holding signet:admin; `user lock` makes the
// user's tokens inactive for good (unlocking does not bring them back).
func TestCLIAdminToken(t *testing.T) {
	dir := t.TempDir()
	var cl, root, sam map[string]any
	cliJSON(t, dir, &cl, "client", "create", "--name", "ops")
	cliJSON(t, dir, &root, "user", "create", "--username", "root", "--role", "admin")
	cliJSON(t, dir, &sam, "user", "create", "--username", "sam")
	var tok map[string]any
	cliJSON(t, dir, &tok, "token", "issue", "--client", cl["client_id"].(string), "--user", "root", "--admin")
	aud, _ := tok["aud"].([]any)
	if len(aud) != 2 || !strings.HasSuffix(aud[1].(string), "/admin/v1") {
		t.Fatalf("admin token audience: %v", tok)
	}
	if _, err := cli(t, dir, "token", "issue", "--client", cl["client_id"].(string), "--user", "sam", "--admin"); err == nil || !strings.Contains(err.Error(), "signet:admin") {
		t.Fatalf("a non-admin must not get an admin-API token: %v", err)
	}
	var plain map[string]any
	cliJSON(t, dir, &plain, "token", "issue", "--client", cl["client_id"].(string), "--user", "sam")
	if _, err := cli(t, dir, "user", "lock", "sam"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli(t, dir, "user", "unlock", "sam"); err != nil {
		t.Fatal(err)
	}
	var ex map[string]any
	cliJSON(t, dir, &ex, "token", "explain", plain["access_token"].(string))
	if ex["active"] != false || !strings.Contains(fmt.Sprint(ex["detail"]), "locked") {
		t.Fatalf("a token from before the lock must stay inactive after unlocking: %v", ex)
	}
}

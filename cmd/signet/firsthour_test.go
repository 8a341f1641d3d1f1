package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/config"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/server"
	"github.com/signet-id/signet/internal/testenv"
)

// assertNotCreated fails when dir (a data directory that did not exist) now exists.
func assertNotCreated(t *testing.T, dir string) {
	t.Helper()
	if entries, err := os.ReadDir(dir); err == nil {
		t.Errorf("%s was created (%d entries) by a command that failed or must not create a store", dir, len(entries))
	}
}

// TestOnlyServeCreatesAStore: a command pointed at a data directory or database that serve never
// created refuses, naming what it looked at and how to point it at the server's, and creates
// nothing (no second database with its own master key).
func TestOnlyServeCreatesAStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "elsewhere")
	_, stderr, err := runCLI("client", "create", "--name", "x", "--data-dir", dir)
	if exitStatus(err) != 1 {
		t.Fatalf("exit status %d: %v", exitStatus(err), err)
	}
	for _, want := range []string{"no Signet database at sqlite:" + filepath.Join(dir, "signet.db"), "from --data-dir", "only `signet serve` creates one", "--data-dir", "SIGNET_DB", "--config"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("refusal lacks %q:\n%s", want, stderr)
		}
	}
	assertNotCreated(t, dir)

	t.Chdir(t.TempDir())
	if _, stderr, _ := runCLI("user", "list"); !strings.Contains(stderr, "sqlite:signet-data/signet.db (the data directory ./signet-data, from default)") {
		t.Errorf("the default is named as such:\n%s", stderr)
	}
	assertNotCreated(t, "signet-data")

	dsn := testenv.PostgresDSN(t) // an empty schema: reachable, but serve never ran there
	if _, stderr, err := runCLI("client", "list", "--db", dsn, "--data-dir", dir); err == nil || !strings.Contains(stderr, "no Signet database at postgres://") || !strings.Contains(stderr, "(from --db)") {
		t.Errorf("PostgreSQL schema serve never created: %v\n%s", err, stderr)
	}
	assertNotCreated(t, dir)
}

// TestServeRefusesBadSettingsBeforeCreatingAnything: every setting is checked, with the flag or
// variable it came from, before the data directory exists.
func TestServeRefusesBadSettingsBeforeCreatingAnything(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tc := range []struct {
		args   []string
		env    map[string]string
		status int
		want   string
	}{
		{args: []string{"--log-level", "loud"}, status: 2, want: `invalid argument "loud" for "--log-level" flag: "loud" is not one of debug, info, warn, error`},
		{args: []string{"--log-format", "yaml"}, status: 2, want: `invalid argument "yaml" for "--log-format" flag: "yaml" is not one of text, json`},
		{env: map[string]string{"SIGNET_LOG_FORMAT": "yaml"}, status: 1, want: `log-format (from SIGNET_LOG_FORMAT): "yaml" is not a log format`},
		{args: []string{"--rate-limit", "abc"}, status: 2, want: `invalid argument "abc" for "--rate-limit" flag: "abc" is not a number`},
		{args: []string{"--access-token-ttl", "15"}, status: 2, want: `"--access-token-ttl" flag: "15" is not a duration`},
		{args: []string{"--db", "postgres://"}, status: 1, want: "db (from --db): \"postgres:\" lacks the host and the database name"},
		{args: []string{"--master-key", "notbase64"}, status: 1, want: "master-key (from --master-key): master key must be 32 bytes"},
		{env: map[string]string{"SIGNET_MASTER_KEY": "notbase64"}, status: 1, want: "master-key (from SIGNET_MASTER_KEY)"},
		{args: []string{"--tls-cert", missing, "--tls-key", missing}, status: 1, want: "tls-cert (from --tls-cert) and tls-key (from --tls-key): open " + missing},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		dir := filepath.Join(t.TempDir(), "data")
		_, stderr, err := runCLI(append([]string{"serve", "--data-dir", dir, "--addr", "127.0.0.1:0"}, tc.args...)...)
		if exitStatus(err) != tc.status || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "strconv") {
			t.Errorf("%v %v: exit %d, want %d and %q:\n%s", tc.args, tc.env, exitStatus(err), tc.status, tc.want, stderr)
		}
		if tc.want != "" && strings.Contains(tc.want, "--master-key") && strings.Contains(stderr, "SIGNET_MASTER_KEY") {
			t.Errorf("a flag is reported as the flag: %s", stderr)
		}
		assertNotCreated(t, dir)
		for k := range tc.env {
			os.Unsetenv(k)
		}
	}
}

// TestServeOnABusyPortCreatesNothing: the listener is bound before the database, the master key and
// the admin exist, so a busy port does not leave an admin whose password was never shown.
func TestServeOnABusyPortCreatesNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := filepath.Join(t.TempDir(), "data")
	_, stderr, err := runCLI("serve", "--data-dir", dir, "--addr", ln.Addr().String(), "--issuer", "http://"+ln.Addr().String())
	if err == nil || !strings.Contains(stderr, "addr (from --addr)") || !strings.Contains(stderr, "address already in use") {
		t.Fatalf("busy port: %v\n%s", err, stderr)
	}
	assertNotCreated(t, dir)
}

// TestServeNextStepsUseTheServersDataDir: the banner's commands carry the flags serve was given,
// and run as printed they reach the server's database.
func TestServeNextStepsUseTheServersDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my data")
	out := serveOnce(t, dir)
	m := regexp.MustCompile(`go run ./cmd/signet (client create .*)`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(m[1], "--data-dir '"+dir+"'") {
		t.Fatalf("next steps lack --data-dir:\n%s", out)
	}
	args := []string{"client", "create", "--name", "my-api", "--json", "--data-dir", dir}
	if m[1] != "client create --name my-api --json --data-dir '"+dir+"'" {
		t.Fatalf("next step %q is not the command this test runs", m[1])
	}
	stdout, stderr, err := runCLI(args...)
	if err != nil || !strings.Contains(stdout, "client_secret") {
		t.Fatalf("the printed command fails: %v\n%s", err, stderr)
	}
}

// TestMissingMasterKeyIsNeverRegenerated: an existing database without its master key is refused
// with what happened and how to restore the key; no new key is written.
func TestMissingMasterKeyIsNeverRegenerated(t *testing.T) {
	dir := t.TempDir()
	initStore(t, dir)
	key := secrets.MasterKeyPath(dir)
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"client", "list"}, {"serve", "--addr", "127.0.0.1:0", "--issuer", "http://127.0.0.1:1"}} {
		_, stderr, err := runCLI(append(args, "--data-dir", dir)...)
		if err == nil || !strings.Contains(stderr, "exists but its master key does not") || !strings.Contains(stderr, "Restore master.key from the backup") || !strings.Contains(stderr, "SIGNET_MASTER_KEY") {
			t.Errorf("%v: %v\n%s", args, err, stderr)
		}
		if _, err := os.Stat(key); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%v wrote a new master key", args)
		}
	}
}

// initPostgres creates a Signet database in a PostgreSQL schema of the test's own, as `signet serve`
// does, with its master key in a fresh data directory, and returns both.
func initPostgres(t *testing.T) (dsn, dir string) {
	t.Helper()
	dsn, dir = testenv.PostgresDSN(t), t.TempDir()
	cfg, _ := config.Defaults()
	cfg.DataDir, cfg.DB = dir, dsn
	s, err := server.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	return dsn, dir
}

// TestMissingMasterKeyOnPostgreSQL: the same refusal when the database is a PostgreSQL schema.
func TestMissingMasterKeyOnPostgreSQL(t *testing.T) {
	dsn, dir := initPostgres(t)
	if _, _, err := runCLI("client", "list", "--db", dsn, "--data-dir", dir); err != nil {
		t.Fatalf("with its key: %v", err)
	}
	os.Remove(secrets.MasterKeyPath(dir))
	_, stderr, err := runCLI("client", "list", "--db", dsn, "--data-dir", dir)
	if err == nil || !strings.Contains(stderr, "exists but its master key does not") {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if _, err := os.Stat(secrets.MasterKeyPath(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a new master key was written")
	}
}

// TestSetPasswordRecoversTheAdmin: the first-run admin whose password was lost gets a new one.
func TestSetPasswordRecoversTheAdmin(t *testing.T) {
	dir := t.TempDir()
	var v map[string]any
	cliJSON(t, dir, &v, "user", "set-password", "admin", "--generate-password")
	pw, _ := v["password"].(string)
	if len(pw) < 12 || v["username"] != "admin" {
		t.Fatalf("set-password: %v", v)
	}
	cfg, _ := config.Defaults()
	cfg.DataDir = dir
	s, err := server.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, err := s.Store.GetUserByUsername(context.Background(), "admin")
	if err != nil || !secrets.VerifyPassword(u.PasswordHash, pw) {
		t.Fatalf("the admin's password is not the new one: %v", err)
	}
	if _, err := cli(t, dir, "user", "set-password", "admin"); exitStatus(err) != exitUsage {
		t.Errorf("set-password without a password: %v", err)
	}
}

// TestCLIUsage: server flags belong to serve; unknown subcommands and flags are usage errors (2);
// --json exists where it changes output and turns errors into JSON on stderr.
func TestCLIUsage(t *testing.T) {
	dir := t.TempDir()
	initStore(t, dir)
	for _, args := range [][]string{{"user", "frobnicate"}, {"frobnicate"}, {"client", "create", "--name", "x", "--rate-limit", "5"}, {"serve", "--json"}, {"token", "explain"}} {
		if _, stderr, err := runCLI(append(args, "--data-dir", dir)...); exitStatus(err) != exitUsage {
			t.Errorf("%v: exit %d, want 2 (%v)\n%s", args, exitStatus(err), err, stderr)
		}
	}
	help, _, _ := runCLI("client", "create", "--help")
	for _, flag := range []string{"--rate-limit", "--issuer", "--webhook-url", "--tls-cert"} {
		if strings.Contains(help, flag) {
			t.Errorf("client create --help offers the server's %s:\n%s", flag, help)
		}
	}
	if !strings.Contains(help, "--data-dir") || !strings.Contains(help, "--json") {
		t.Errorf("client create --help lacks the store flags or --json:\n%s", help)
	}
	if help, _, _ := runCLI("serve", "--help"); !strings.Contains(help, "--rate-limit number") || !strings.Contains(help, "--leeway duration") {
		t.Errorf("serve --help shows typed flags:\n%s", help)
	}
	_, stderr, err := runCLI("client", "list", "--json", "--data-dir", filepath.Join(dir, "nope"))
	var e map[string]string
	if err == nil || json.Unmarshal([]byte(stderr), &e) != nil || !strings.Contains(e["error"], "no Signet database") {
		t.Errorf("--json error on stderr: %q", stderr)
	}
}

// TestTokenCommandsForScripts: token issue prints the token alone on stdout (for $(…)); token
// explain exits 0 for an active token and 1 for an inactive one.
func TestTokenCommandsForScripts(t *testing.T) {
	dir := t.TempDir()
	var c map[string]any
	cliJSON(t, dir, &c, "client", "create", "--name", "ops")
	initStore(t, dir)
	stdout, stderr, err := runCLI("token", "issue", "--client", c["client_id"].(string), "--data-dir", dir)
	tok := strings.TrimSuffix(stdout, "\n")
	if err != nil || tok == "" || strings.ContainsAny(tok, "\n ") || !strings.Contains(stderr, "jti ") {
		t.Fatalf("token issue: %v\nstdout %q\nstderr %q", err, stdout, stderr)
	}
	if out, _, err := runCLI("token", "explain", tok, "--data-dir", dir); err != nil || !strings.HasPrefix(out, "ACTIVE") {
		t.Errorf("active token: exit %d\n%s", exitStatus(err), out)
	}
	if _, err := cli(t, dir, "token", "revoke", tok); err != nil {
		t.Fatal(err)
	}
	if out, stderr, err := runCLI("token", "explain", tok, "--data-dir", dir); exitStatus(err) != 1 || !strings.HasPrefix(out, "INACTIVE: revoked") || stderr != "" {
		t.Errorf("inactive token: exit %d\n%s%s", exitStatus(err), out, stderr)
	}
}

// TestUserCreateWithoutRoles prints a sentence, not "roles )".
func TestUserCreateWithoutRoles(t *testing.T) {
	out, err := cli(t, t.TempDir(), "user", "create", "--username", "dana")
	if err != nil || !strings.Contains(out, "no roles)") || strings.Contains(out, "roles )") {
		t.Fatalf("%v: %q", err, out)
	}
}

// TestKeyFilesStayOutOfGitWorkTrees: a private key file inside a git work tree needs --force.
func TestKeyFilesStayOutOfGitWorkTrees(t *testing.T) {
	dir := t.TempDir()
	repo := t.TempDir()
	if err := os.Mkdir(filepath.Join(repo, ".git"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := cli(t, dir, "serviceaccount", "create", "--name", "ci-bot"); err != nil {
		t.Fatal(err)
	}
	inside := filepath.Join(repo, "sub", "key.json")
	if _, err := cli(t, dir, "serviceaccount", "key", "create", "--serviceaccount", "ci-bot", "--out", inside); err == nil ||
		!strings.Contains(err.Error(), "inside the git work tree "+repo) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("inside a work tree: %v", err)
	}
	if _, err := os.Stat(inside); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the refused key file was written")
	}
	if _, err := cli(t, dir, "serviceaccount", "key", "create", "--serviceaccount", "ci-bot", "--out", inside, "--force"); err != nil {
		t.Fatalf("--force: %v", err)
	}
	outside := filepath.Join(t.TempDir(), "keys", "key.json")
	if _, err := cli(t, dir, "serviceaccount", "key", "create", "--serviceaccount", "ci-bot", "--out", outside); err != nil {
		t.Fatalf("outside a work tree: %v", err)
	}
}

// TestBackupUnderLoadRestores: signet backup copies the database while another writer appends to
// the audit chain, with the master key beside it; restored into a fresh data directory as the help
// says, the copy has the same keys and clients, its chain verifies, and tokens from before verify.
func TestBackupUnderLoadRestores(t *testing.T) {
	dir := t.TempDir()
	var c map[string]any
	cliJSON(t, dir, &c, "client", "create", "--name", "api")
	tok, _, err := runCLI("token", "issue", "--client", c["client_id"].(string), "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	var keysBefore, clientsBefore []map[string]any
	cliJSON(t, dir, &keysBefore, "keys", "list")
	cliJSON(t, dir, &clientsBefore, "client", "list")

	// Load: eight writers append audit events until the backup is done.
	cfg, _ := config.Defaults()
	cfg.DataDir = dir
	s, err := server.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const writers = 8
	var total atomic.Int64
	stop, done, loaded := make(chan struct{}), make(chan struct{}, writers), make(chan struct{})
	var once sync.Once
	for w := range writers {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := s.Audit.Record(context.Background(), audit.Event{Type: audit.TypeUserChanged, Actor: "load", Details: map[string]any{"writer": w}}); err != nil {
					t.Error(err)
					return
				}
				if total.Add(1) >= 50 {
					once.Do(func() { close(loaded) }) // the backup starts while the writers are in full flow
				}
			}
		}()
	}
	out := filepath.Join(t.TempDir(), "backups", "signet.db")
	<-loaded
	var b map[string]string
	var keysAfter, clientsAfter []map[string]any
	var verify map[string]any
	stdout, stderr, err := runCLI("backup", "--out", out, "--json", "--data-dir", dir, "--log-level", "error")
	during := total.Load()
	close(stop)
	for range writers {
		<-done
	}
	t.Logf("%d events written while the backup ran (%d in all)", during-50, total.Load())
	if err != nil || json.Unmarshal([]byte(stdout), &b) != nil || b["master_key"] != out+".master.key" || b["master_key_fingerprint"] != s.Secrets.Fingerprint() {
		t.Fatalf("backup: %v\n%s%s", err, stdout, stderr)
	}
	for _, p := range []string{out, out + ".master.key"} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", p, fi, err)
		}
	}
	if _, stderr, err := runCLI("backup", "--out", out, "--data-dir", dir); err == nil || !strings.Contains(stderr, "--force") {
		t.Errorf("overwriting a backup: %v %s", err, stderr)
	}

	// Restore as `signet backup` says: signet restore into a fresh data directory.
	restored := filepath.Join(t.TempDir(), "restored")
	var r map[string]any
	stdout, stderr, err = runCLI("restore", "--from", out, "--data-dir", restored, "--json", "--log-level", "error")
	if err != nil || json.Unmarshal([]byte(stdout), &r) != nil || r["audit_intact"] != true || r["master_key"] != filepath.Join(restored, "master.key") {
		t.Fatalf("restore: %v\n%s%s", err, stdout, stderr)
	}
	if _, stderr, err := runCLI("restore", "--from", out, "--data-dir", restored); err == nil || !strings.Contains(stderr, "already holds a Signet database") {
		t.Errorf("restore over a database: %v %s", err, stderr)
	}
	if _, stderr, err := runCLI("restore", "--from", out, "--data-dir", dir); err == nil || !strings.Contains(stderr, "fresh data directory") {
		t.Errorf("restore over the live data: %v %s", err, stderr)
	}
	// By hand, as operations.md also describes: the two files copied.
	byHand := filepath.Join(t.TempDir(), "by-hand")
	if err := os.Mkdir(byHand, 0o700); err != nil {
		t.Fatal(err)
	}
	copyFile(t, out, filepath.Join(byHand, "signet.db"))
	copyFile(t, out+".master.key", filepath.Join(byHand, "master.key"))
	cliJSON(t, byHand, &verify, "audit", "verify")
	if verify["intact"] != true {
		t.Errorf("copied by hand: %v", verify)
	}
	cliJSON(t, restored, &keysAfter, "keys", "list")
	cliJSON(t, restored, &clientsAfter, "client", "list")
	cliJSON(t, restored, &verify, "audit", "verify")
	if string(mustJSON(keysAfter)) != string(mustJSON(keysBefore)) || string(mustJSON(clientsAfter)) != string(mustJSON(clientsBefore)) {
		t.Errorf("restored keys or clients differ:\n%v\n%v", keysAfter, keysBefore)
	}
	if verify["intact"] != true {
		t.Errorf("restored audit chain: %v", verify)
	}
	if out, _, err := runCLI("token", "explain", strings.TrimSpace(tok), "--data-dir", restored); err != nil || !strings.HasPrefix(out, "ACTIVE") {
		t.Errorf("a token from before the backup, explained on the restored copy: %v\n%s", err, out)
	}
	banner := serveOnce(t, restored)
	if strings.Contains(banner, "master key: generated") || strings.Contains(banner, "First run") {
		t.Errorf("serve on the restored copy created things:\n%s", banner)
	}
}

// TestBackupOnPostgreSQLNamesPgDump: signet backup does not reimplement pg_dump; it says how.
func TestBackupOnPostgreSQLNamesPgDump(t *testing.T) {
	_, stderr, err := runCLI("backup", "--out", filepath.Join(t.TempDir(), "x"), "--db", "postgres://postgres@127.0.0.1:5432/test", "--data-dir", t.TempDir())
	if exitStatus(err) != 1 || !strings.Contains(stderr, "pg_dump --format=custom") || !strings.Contains(stderr, "master") {
		t.Fatalf("%v\n%s", err, stderr)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestREADMETestCommandIsWhatCIRuns: the README's test command is `go test ./...` alone, and .ci/run
// runs that command (with -count=1 -v for its summary) and nothing else for the tests.
func TestREADMETestCommandIsWhatCIRuns(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile("(?m)^go test \\./\\.\\.\\. +# run every test").Match(readme) || strings.Contains(string(readme), "npm --prefix test/node") {
		t.Error("README's test command is not `go test ./...` alone")
	}
	if !strings.Contains(string(ci), "\ngo test -count=1 -v ./... > ") || regexp.MustCompile(`(?m)^[^#]*\bnpm\b`).Match(ci) || !strings.Contains(string(ci), "go mod tidy -diff") {
		t.Error(".ci/run does not run exactly the README's command (or runs npm itself, or skips go mod tidy -diff)")
	}
}

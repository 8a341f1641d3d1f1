package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// signalWriter collects output and closes ready once it has seen marker.
type signalWriter struct {
	mu     sync.Mutex
	b      bytes.Buffer
	marker string
	ready  chan struct{}
	once   sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.b.Write(p)
	if strings.Contains(w.b.String(), w.marker) {
		w.once.Do(func() { close(w.ready) })
	}
	return n, err
}

func (w *signalWriter) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.b.String() }

// shBlocks returns the ```sh blocks of a Markdown file that contain every one of marks.
func shBlocks(t *testing.T, path string, marks ...string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		all := true
		for _, mark := range marks {
			all = all && strings.Contains(m[1], mark)
		}
		if all {
			out = append(out, m[1])
		}
	}
	return out
}

// runExample runs a documented shell example literally against a fresh server on a free loopback
// port and a fresh data directory: `go run ./cmd/signet` and `signet` are a binary built from this
// package, http://localhost:8080 is the server. It returns the example's standard output.
func runExample(t *testing.T, script string) string {
	t.Helper()
	for _, tool := range []string{"bash", "jq", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the example needs %s, which is not installed", tool)
		}
	}
	if strings.ContainsAny(script, "<>") {
		t.Fatalf("the example has placeholders a shell cannot run:\n%s", script)
	}
	binDir := t.TempDir()
	bin := filepath.Join(binDir, "signet")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	issuer := startServer(t, dir)
	script = strings.ReplaceAll(script, "go run ./cmd/signet", bin)
	script = strings.ReplaceAll(script, "http://localhost:8080", issuer)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"SIGNET_DATA_DIR="+dir, "SIGNET_ISSUER="+issuer, "SIGNET_LOG_LEVEL=error")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("the example fails: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// startServer runs `signet serve` on dataDir (with extra flags) on a free loopback port until the
// test ends, and returns its issuer URL once it answers /ready.
func startServer(t *testing.T, dataDir string, extra ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	issuer := "http://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	out := &signalWriter{marker: "Signet is running.", ready: make(chan struct{})}
	root := newRoot()
	root.SetArgs(append([]string{"serve", "--data-dir", dataDir, "--addr", addr, "--issuer", issuer, "--log-level", "warn"}, extra...))
	root.SetOut(out)
	root.SetErr(out)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-out.ready:
	case err := <-done:
		t.Fatalf("serve exited: %v\n%s", err, out)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not start:\n%s", out)
	}
	// The banner may come a moment before the listener takes requests: wait until it answers.
	ready := time.NewTicker(20 * time.Millisecond)
	defer ready.Stop()
	for deadline := time.After(10 * time.Second); ; {
		if resp, err := http.Get(issuer + "/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return issuer
			}
		}
		select {
		case <-ready.C:
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, out)
		case <-deadline:
			t.Fatalf("the server never answered /ready:\n%s", out)
		}
	}
}

// TestServeTakesEveryDocumentedRuleFieldAndRefusesUnknownNames: a policy file with refresh_ttl
// (the trap: it was refused as an unknown key and the server exited) starts the server (the values
// themselves round-trip in exchange.TestPolicyFileTakesEveryRuleField); a file naming a role that does not exist stops the start-up, saying which.
func TestServeTakesEveryDocumentedRuleFieldAndRefusesUnknownNames(t *testing.T) {
	dir := t.TempDir()
	var api map[string]any
	cliJSON(t, dir, &api, "client", "create", "--name", "orders-api")
	file := filepath.Join(t.TempDir(), "policy.yaml")
	rule := "rules:\n  - name: support-refresh\n    mode: impersonation\n    actors: {roles: [support]}\n    subjects: {roles: [%s]}\n" +
		"    audiences: [" + api["client_id"].(string) + "]\n    max_ttl: 15m\n    allow_refresh: true\n    refresh_ttl: 2h\n    notify_subject: false\n"
	if err := os.WriteFile(file, []byte(strings.Replace(rule, "%s", "customer", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	root := newRoot()
	root.SetArgs([]string{"serve", "--data-dir", dir, "--addr", "127.0.0.1:0", "--policy-file", file, "--log-level", "error"})
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), `subjects.roles: no role "customer"`) {
		t.Fatalf("a policy file naming a role that does not exist: %v", err)
	}
	var role map[string]any
	cliJSON(t, dir, &role, "role", "create", "customer")
	startServer(t, dir, "--policy-file", file) // fails the test unless the server starts and answers
}

// TestREADMEActingForSomeoneRunsAsWritten runs the README's acting-for-someone example literally:
// it sets its own placeholders from earlier commands, and ends with an active token whose act names
// Sam.
func TestREADMEActingForSomeoneRunsAsWritten(t *testing.T) {
	blocks := shBlocks(t, "../../README.md", "grant-type:token-exchange", "policy check")
	if len(blocks) != 1 {
		t.Fatalf("README.md has %d sh examples that perform a token exchange after policy check; want 1", len(blocks))
	}
	stdout := runExample(t, blocks[0])
	if !strings.Contains(stdout, `ALLOW (impersonation) by rule "support-impersonates-customers"`) {
		t.Fatalf("policy check did not allow:\n%s", stdout)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var info struct {
		Active bool `json:"active"`
		Act    struct {
			Sub string `json:"sub"`
		} `json:"act"`
		Exchange struct {
			Kind string `json:"kind"`
		} `json:"signet_exchange"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &info); err != nil || !info.Active || info.Act.Sub == "" || info.Exchange.Kind != "impersonation" {
		t.Fatalf("the introspection at the end: %v\n%s", err, stdout)
	}
}

// TestTokenExchangeDocRunsAsWritten runs docs/token-exchange.md's shell examples in order: role
// create makes the customer role the rule names, policy check allows, and the curl exchange issues.
func TestTokenExchangeDocRunsAsWritten(t *testing.T) {
	blocks := shBlocks(t, "../../docs/token-exchange.md", "signet")
	if len(blocks) != 2 {
		t.Fatalf("docs/token-exchange.md has %d sh examples with signet commands; this test runs 2 (the rules and the exchange)", len(blocks))
	}
	stdout := runExample(t, strings.Join(blocks, "\n"))
	if !strings.Contains(stdout, "Created role customer") || !strings.Contains(stdout, `ALLOW (impersonation) by rule "support-impersonates-customers"`) {
		t.Fatalf("role create and policy check:\n%s", stdout)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var resp struct {
		AccessToken     string `json:"access_token"`
		IssuedTokenType string `json:"issued_token_type"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &resp); err != nil || resp.AccessToken == "" {
		t.Fatalf("the exchange at the end: %v\n%s", err, stdout)
	}
}

package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveOnce runs `signet serve` on dataDir until the banner is printed and /ready answers, then
// stops it and returns what it printed (standard output: the banner, without logs).
func serveOnce(t *testing.T, dataDir string) string {
	t.Helper()
	_, out, stop := runServer(t, dataDir, false)
	if err := stop(); err != nil {
		t.Fatalf("serve did not shut down cleanly: %v", err)
	}
	return out.String()
}

// TestServeFirstRunAndRestart is the newcomer's first command: the first start creates everything
// and prints the admin's credentials and next steps; the second reuses the data and prints no
// new password.
func TestServeFirstRunAndRestart(t *testing.T) {
	dir := t.TempDir()
	first := serveOnce(t, dir)
	for _, want := range []string{"Signet is running.", "issuer:", "First run: created the admin user.", "username: admin", "password: ", "client create", "/oauth/v2/token", "master key: generated"} {
		if !strings.Contains(first, want) {
			t.Errorf("first start output lacks %q:\n%s", want, first)
		}
	}
	second := serveOnce(t, dir)
	if strings.Contains(second, "password:") || strings.Contains(second, "master key: generated") {
		t.Errorf("second start must reuse the admin and master key:\n%s", second)
	}
	if !strings.Contains(second, "Signet is running.") {
		t.Errorf("second start output:\n%s", second)
	}
}

// TestMemoryLimitFollowsTheCache: the soft memory limit leaves room for the cache's live tokens, so
// a full cache does not make the collector run without pause; an empty one keeps the 100 MiB bound.
func TestMemoryLimitFollowsTheCache(t *testing.T) {
	if got := memoryLimit(0); got != 100<<20 {
		t.Fatalf("empty cache: %d", got)
	}
	full := memoryLimit(100_000)
	if full < 100<<20+100_000*1024 || full > 300<<20 {
		t.Fatalf("a full default cache (100,000 tokens) gets %d MiB; it needs room for ~150 MiB of tokens", full>>20)
	}
}

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

// startServer runs `signet serve` on dataDir (with extra flags) on a free loopback port until the
// test ends, and returns its issuer URL once it answers /ready.
func startServer(t *testing.T, dataDir string, extra ...string) string {
	t.Helper()
	issuer, _, stop := runServer(t, dataDir, true, extra...)
	t.Cleanup(func() { stop() })
	return issuer
}

// runServer starts `signet serve` on dataDir (with extra flags) on a free loopback port and returns
// once the banner is complete and /ready answers: the issuer URL, what it prints (standard output,
// and its logs when logs is set), and stop, which ends it and returns serve's error.
func runServer(t *testing.T, dataDir string, logs bool, extra ...string) (issuer string, out *signalWriter, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	issuer = "http://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	out = &signalWriter{marker: "Next steps", ready: make(chan struct{})}
	root := newRoot()
	root.SetArgs(append([]string{"serve", "--data-dir", dataDir, "--addr", addr, "--issuer", issuer, "--log-level", "warn"}, extra...))
	root.SetOut(out)
	root.SetErr(io.Discard)
	if logs {
		root.SetErr(out)
	}
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	var once sync.Once
	var served error
	stop = func() error {
		once.Do(func() { cancel(); served = <-done })
		return served
	}
	select {
	case <-out.ready:
	case err := <-done:
		t.Fatalf("serve exited: %v\n%s", err, out)
	case <-time.After(30 * time.Second):
		stop()
		t.Fatalf("serve did not start:\n%s", out)
	}
	// The banner may come a moment before the listener takes requests: wait until it answers.
	ready := time.NewTicker(20 * time.Millisecond)
	defer ready.Stop()
	for deadline := time.After(10 * time.Second); ; {
		if resp, err := http.Get(issuer + "/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return issuer, out, stop
			}
		}
		select {
		case <-ready.C:
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, out)
		case <-deadline:
			stop()
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

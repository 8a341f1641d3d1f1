package main

import (
	"bytes"
	"context"
	"encoding/json"
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

// TestREADMEActingForSomeoneRunsAsWritten runs the README's acting-for-someone example literally
// (with `go run ./cmd/signet` as a built binary and the server on a free loopback port): it sets
// its own placeholders from earlier commands, and ends with an active token whose act names Sam.
func TestREADMEActingForSomeoneRunsAsWritten(t *testing.T) {
	for _, tool := range []string{"bash", "jq", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the README example needs %s, which is not installed", tool)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var block string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		if strings.Contains(m[1], "grant-type:token-exchange") && strings.Contains(m[1], "policy check") {
			block = m[1]
		}
	}
	if block == "" {
		t.Fatal("README.md has no sh example that performs a token exchange after policy check")
	}
	if strings.ContainsAny(block, "<>") {
		t.Fatalf("the example has placeholders a shell cannot run:\n%s", block)
	}

	bin := filepath.Join(t.TempDir(), "signet")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
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
	root.SetArgs([]string{"serve", "--data-dir", dir, "--addr", addr, "--issuer", issuer, "--log-level", "warn"})
	root.SetOut(out)
	root.SetErr(out)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
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
				break
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

	script := strings.ReplaceAll(block, "go run ./cmd/signet", bin)
	script = strings.ReplaceAll(script, "http://localhost:8080", issuer)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Env = append(os.Environ(), "SIGNET_DATA_DIR="+dir, "SIGNET_ISSUER="+issuer, "SIGNET_LOG_LEVEL=error")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("the README example fails: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), `ALLOW (impersonation) by rule "support-impersonates-customers"`) {
		t.Fatalf("policy check did not allow:\n%s", stdout.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
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
		t.Fatalf("the introspection at the end: %v\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
}

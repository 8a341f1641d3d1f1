// Package node runs the Node.js interop suite (openid-client and plain fetch against a real
// `signet serve`, see signet.mjs) from `go test ./...`, so the README's one test command covers
// it: it installs the npm packages itself (npm ci, whenever package-lock.json changed since the
// last install) and builds the signet binary once for every test file.
package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/testenv"
)

// stampFile records, inside node_modules, the hash of the package-lock.json it was installed from.
const stampFile = "node_modules/.signet-package-lock.sha256"

func TestNodeInterop(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Unavailable(t, "Node.js is not installed, so the openid-client interop suite in test/node did not run (install Node 20 or later with npm)")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		testenv.Unavailable(t, "npm is not installed, so the openid-client interop suite in test/node did not run (install npm with Node 20 or later)")
	}
	out, err := exec.Command(node, "--version").Output()
	if m := regexp.MustCompile(`^v(\d+)\.`).FindSubmatch(out); err != nil || m == nil {
		testenv.Unavailable(t, "`node --version` did not answer: "+string(out))
	} else if major, _ := strconv.Atoi(string(m[1])); major < 20 {
		testenv.Unavailable(t, "Node.js "+string(out[:len(out)-1])+" is too old for the interop suite in test/node (openid-client 6 needs Node 20 or later)")
	}

	ctx := t.Context()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-10*time.Second)) // time to report before go test's own timeout
		defer cancel()
	}
	installPackages(t, ctx, npm)

	bin := filepath.Join(t.TempDir(), "signet")
	build := exec.CommandContext(ctx, goTool(), "build", "-o", bin, "./cmd/signet")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/signet: %v\n%s", err, out)
	}

	// npm test runs the suite exactly as `npm --prefix test/node test` would; its output goes to
	// stdout as it comes (go test -v shows it; .ci/run counts its "ℹ pass N" lines).
	cmd := exec.CommandContext(ctx, npm, "test")
	cmd.Env = append(os.Environ(), "SIGNET_BIN="+bin)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("the Node interop suite failed (%v); its output is above. Run it alone with `go test -v ./test/node` or `npm --prefix test/node test`", err)
	}
}

// installPackages runs npm ci when node_modules is missing or was installed from another
// package-lock.json.
func installPackages(t *testing.T, ctx context.Context, npm string) {
	t.Helper()
	lock, err := os.ReadFile("package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	if got, err := os.ReadFile(stampFile); err == nil && string(got) == want {
		return
	}
	t.Log("installing the npm packages of test/node (npm ci): node_modules is missing or older than package-lock.json")
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm ci in test/node failed: %v\n%s", err, out)
	}
	if err := os.WriteFile(stampFile, []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
}

// goTool is the go command of the toolchain running this test.
func goTool() string {
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}

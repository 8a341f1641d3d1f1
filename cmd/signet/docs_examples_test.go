package main

// The docs' shell examples run as written. Fenced blocks in README.md and docs/*.md are marked:
//
//	```sh                   an example: run. Each file's sh blocks run in order, as one bash session
//	                        (set -euo pipefail), in a fresh data directory against a fresh
//	                        `signet serve`; variables an earlier block sets are there for later ones.
//	```sh norun: REASON     shown, never run, with a one-line reason (it starts its own server,
//	                        needs PostgreSQL or a second server, runs go test, …).
//	```console              a transcript or an output sample: never run.
//
// Any other shell-ish fence (bash, shell, zsh, shell-session, a fence without a language, or a
// norun without its reason) fails TestDocsShellBlocksAreRunOrMarked, so no example escapes by its
// marker. In a run block `go run ./cmd/signet` and `signet` are a binary built from this package,
// http://localhost:8080 is the test's server, and placeholders (`<user ID>`, `…`) are refused outside
// comments: a value an example needs is a shell variable an earlier command of the same file sets.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/testenv"
)

// fence is one fenced code block of a Markdown file.
type fence struct {
	file string // the Markdown file, as found
	line int    // the line of the opening fence, from 1
	info string // what follows the opening fence: "sh", "sh norun: needs PostgreSQL", "console"
	body string
}

// lang is the fence's language: the first word of its info string.
func (f fence) lang() string {
	if w := strings.Fields(f.info); len(w) > 0 {
		return w[0]
	}
	return ""
}

func (f fence) String() string {
	return fmt.Sprintf("%s:%d (```%s)", strings.TrimPrefix(f.file, "../../"), f.line, f.info)
}

// fences returns the fenced code blocks (``` or ~~~, indented in a list or not) of a Markdown file.
func fences(t *testing.T, path string) []fence {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []fence
	var open *fence
	var marker, indent string
	var body strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		if open == nil {
			for _, m := range []string{"```", "~~~"} {
				if strings.HasPrefix(trimmed, m) {
					run := len(trimmed) - len(strings.TrimLeft(trimmed, m[:1]))
					marker, indent = trimmed[:run], line[:len(line)-len(trimmed)]
					open = &fence{file: path, line: n, info: strings.TrimSpace(trimmed[run:])}
					body.Reset()
				}
			}
			continue
		}
		if strings.HasPrefix(trimmed, marker) && strings.Trim(strings.TrimSpace(trimmed), marker[:1]) == "" {
			open.body = body.String()
			out = append(out, *open)
			open = nil
			continue
		}
		body.WriteString(strings.TrimPrefix(line, indent))
		body.WriteByte('\n')
	}
	if open != nil {
		t.Fatalf("%s: the fence opened at line %d is never closed", path, open.line)
	}
	return out
}

// docFiles are the Markdown files whose examples must run: README.md and docs/*.md.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs found: %v", err)
	}
	return append([]string{"../../README.md"}, files...)
}

// shellish are the languages a reader could take for shell commands.
var shellish = map[string]bool{"": true, "sh": true, "bash": true, "shell": true, "zsh": true,
	"console": true, "shell-session": true, "sh-session": true, "terminal": true}

// exampleKind says how the docs test treats a fence: "run", "norun" (a shell example marked not to
// run, with its reason), "console" (a transcript), "other" (not shell: go, json, …), or an error
// saying how to mark it.
func exampleKind(f fence) (string, error) {
	lang := f.lang()
	switch {
	case f.info == "sh":
		return "run", nil
	case lang == "sh":
		if reason, ok := strings.CutPrefix(strings.TrimSpace(strings.TrimPrefix(f.info, "sh")), "norun:"); ok && strings.TrimSpace(reason) != "" {
			return "norun", nil
		}
		return "", fmt.Errorf("%s: a sh block is either ```sh (run) or ```sh norun: REASON", f)
	case lang == "console":
		return "console", nil
	case shellish[lang] || strings.HasPrefix(lang, "bash") || strings.HasPrefix(lang, "sh-"):
		return "", fmt.Errorf("%s: mark a shell example ```sh (run against a fresh server), ```sh norun: REASON, or ```console (a transcript)", f)
	}
	return "other", nil
}

// placeholder matches what a reader fills in by hand: <user ID>, … .
var placeholder = regexp.MustCompile(`<[A-Za-z][^<>]*>|…`)

// placeholders returns the lines of a run block that hold a placeholder outside a comment.
func placeholders(body string) []string {
	var bad []string
	for _, line := range strings.Split(body, "\n") {
		code := line
		if strings.HasPrefix(strings.TrimSpace(code), "#") {
			continue
		}
		if i := strings.Index(code, " #"); i >= 0 {
			code = code[:i]
		}
		if placeholder.MatchString(code) {
			bad = append(bad, line)
		}
	}
	return bad
}

// TestDocsShellBlocksAreRunOrMarked: every shell-ish fence in README.md and docs/ is run, or marked
// not to be with a reason, or a transcript; run blocks hold no placeholder a shell cannot fill.
func TestDocsShellBlocksAreRunOrMarked(t *testing.T) {
	for _, tc := range []struct {
		info, kind string
	}{
		{"sh", "run"}, {"sh norun: needs PostgreSQL", "norun"}, {"console", "console"}, {"go", "other"}, {"json", "other"},
		{"sh norun", ""}, {"sh norun:", ""}, {"sh  skip", ""}, {"bash", ""}, {"shell", ""}, {"bash-norun", ""}, {"", ""}, {"zsh", ""},
	} {
		kind, err := exampleKind(fence{file: "x.md", line: 1, info: tc.info})
		if kind != tc.kind || (tc.kind == "") != (err != nil) {
			t.Errorf("```%s: %q, %v; want %q", tc.info, kind, err, tc.kind)
		}
	}
	if bad := placeholders("echo ok # <fine in a comment> …\nsignet audit list --actor <user ID>\nsignet audit verify --anchor 1:9f3c…\n"); len(bad) != 2 {
		t.Errorf("placeholders found: %q", bad)
	}

	runs := 0
	for _, file := range docFiles(t) {
		for _, f := range fences(t, file) {
			kind, err := exampleKind(f)
			if err != nil {
				t.Error(err)
				continue
			}
			if kind != "run" {
				continue
			}
			runs++
			for _, line := range placeholders(f.body) {
				t.Errorf("%s: a placeholder a shell cannot run (set a variable from an earlier command): %s", f, line)
			}
		}
	}
	if runs < 8 {
		t.Errorf("only %d sh blocks run; the scan is broken", runs)
	}
}

// docsExamplesShow is what some examples must print besides exiting 0, by file and block (the
// file's run blocks counted from 1), so an example that runs but no longer shows what the text
// says fails too.
var docsExamplesShow = map[string]map[int][]string{
	"README.md": {
		1: {`"active":true`, `"error":"invalid_client"`, "ACTIVE"},
		3: {`ALLOW (impersonation) by rule "support-impersonates-customers"`, `"active":true`, `"act":{"sub":"u-`, `"signet_exchange":{"kind":"impersonation"`},
		4: {"grants:        authorization_code, refresh_token", "Created user alex", "password: ", "choose a new password at their first sign-in",
			"Updated role admin (requires a second factor: true)", "MUST CHANGE PASSWORD", "User robin locked", "Removed the second factors of alex", "Deleted user robin"},
	},
	"token-exchange.md": {
		1: {"Created role customer", `ALLOW (impersonation) by rule "support-impersonates-customers"`},
		2: {`"access_token":"`, `"issued_token_type":"urn:ietf:params:oauth:token-type:access_token"`},
	},
	"operations.md": {
		1: {"Master key copied to", "intact: true", "chain intact"},
	},
	"introspection.md": {
		1: {`"active":true`},
	},
	"audit.md": {
		1: {"user.changed", "chain intact"},
		2: {"chain intact"},
	},
}

// TestDocsExamplesRunAsWritten runs every ```sh block of README.md and docs/*.md, file by file,
// as described at the top of this file.
func TestDocsExamplesRunAsWritten(t *testing.T) {
	for _, tool := range []string{"bash", "jq", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Unavailable(t, "the docs' examples need "+tool+", which is not installed (apt-get install "+tool+")")
		}
	}
	binDir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "signet"), ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	seen := map[string]bool{}
	for _, file := range docFiles(t) {
		var blocks []fence
		for _, f := range fences(t, file) {
			if kind, _ := exampleKind(f); kind == "run" {
				blocks = append(blocks, f)
			}
		}
		if len(blocks) == 0 {
			continue
		}
		name := filepath.Base(file)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			outputs, failed := runExamples(t, binDir, blocks)
			if failed {
				return
			}
			for n, wants := range docsExamplesShow[name] {
				if n < 1 || n > len(blocks) {
					t.Errorf("docsExamplesShow names block %d of %s, which has %d", n, name, len(blocks))
					continue
				}
				for _, want := range wants {
					if !strings.Contains(outputs[n-1], want) {
						t.Errorf("%s block %d (line %d) ran but its output lacks %s:\n%s", name, n, blocks[n-1].line, want, outputs[n-1])
					}
				}
			}
		})
	}
	for name := range docsExamplesShow {
		if !seen[name] {
			t.Errorf("docsExamplesShow names %s, which has no sh block that runs", name)
		}
	}
}

// blockMark separates the blocks' output; bash prints it before each block.
const blockMark = "::signet-docs-example block "

var blockMarkLine = regexp.MustCompile(`\n` + regexp.QuoteMeta(blockMark) + `([0-9]+)\n`)

// runExamples runs one file's blocks in order as one bash session against a fresh server and data
// directory, and returns each block's output (stdout and stderr). When a block fails it reports
// the file, the block and its output, and returns failed.
func runExamples(t *testing.T, binDir string, blocks []fence) (outputs []string, failed bool) {
	t.Helper()
	// The server's data directory is the default one, ./signet-data of the examples' working
	// directory, so commands run as written (no --data-dir) reach it as they do for a reader.
	work := t.TempDir()
	issuer := startServer(t, filepath.Join(work, "signet-data"))
	for _, d := range []string{"home", "tmp"} {
		if err := os.Mkdir(filepath.Join(work, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	driver := "set -euo pipefail\nshopt -s inherit_errexit\n"
	for i, b := range blocks {
		script := strings.ReplaceAll(b.body, "go run ./cmd/signet", "signet")
		script = strings.ReplaceAll(script, "http://localhost:8080", issuer)
		name := fmt.Sprintf("block-%d.sh", i+1)
		if err := os.WriteFile(filepath.Join(work, name), []byte(script), 0o600); err != nil {
			t.Fatal(err)
		}
		driver += fmt.Sprintf("printf '\\n%s%d\\n'\nsource %s\n", blockMark, i+1, name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", driver)
	// Its own process group, killed whole when the examples end or time out: a process an example
	// leaves behind must not hold the output open or outlive the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	defer func() {
		if cmd.Process != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}()
	cmd.Dir = work
	// A reader's settings are the defaults: none of the developer's SIGNET_ variables leak in. The
	// issuer is the test server's, which stands for http://localhost:8080.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SIGNET_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+filepath.Join(work, "home"), "TMPDIR="+filepath.Join(work, "tmp"),
		"SIGNET_ISSUER="+issuer, "SIGNET_LOG_LEVEL=error")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()

	outputs = make([]string, len(blocks))
	last := 0
	parts := blockMarkLine.Split(out.String(), -1)
	marks := blockMarkLine.FindAllStringSubmatch(out.String(), -1)
	for i, m := range marks {
		n, _ := strconv.Atoi(m[1])
		outputs[n-1], last = parts[i+1], n
	}
	if err != nil {
		if last == 0 {
			t.Fatalf("the examples did not start: %v\n%s", err, out.String())
		}
		b := blocks[last-1]
		t.Errorf("%s: block %d (```sh at line %d) fails: %v\n--- the block:\n%s--- its output:\n%s",
			strings.TrimPrefix(b.file, "../../"), last, b.line, err, b.body, outputs[last-1])
		return outputs, true
	}
	return outputs, false
}

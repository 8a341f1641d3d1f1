package main

import (
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/server"
)

// TestCLIAuditVerifyPrintsAnAnchor: verify prints the head and an anchor; given that anchor later,
// it still passes while the log only grew, and catches what the chain alone cannot — the newest
// events deleted — and an anchor it did not make.
func TestCLIAuditVerifyPrintsAnAnchor(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"ann", "bob"} {
		if _, err := cli(t, dir, "user", "create", "--username", name); err != nil {
			t.Fatal(err)
		}
	}
	out, err := cli(t, dir, "audit", "verify")
	if err != nil || !strings.Contains(out, "OK: 2 events, chain intact") || !strings.Contains(out, "head: event 2, hash ") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	anchor := lineAfter(out, "anchor: ")
	if strings.Count(anchor, ":") != 2 {
		t.Fatalf("no anchor printed:\n%s", out)
	}
	if _, err := cli(t, dir, "user", "create", "--username", "cyd"); err != nil {
		t.Fatal(err)
	}
	if out, err := cli(t, dir, "audit", "verify", "--anchor", anchor); err != nil || !strings.Contains(out, "OK: 3 events") {
		t.Fatalf("the log grew past its anchor: %v\n%s", err, out)
	}
	forged := anchor[:len(anchor)-1] + "0"
	if strings.HasSuffix(anchor, "0") {
		forged = anchor[:len(anchor)-1] + "1"
	}
	if out, err := cli(t, dir, "audit", "verify", "--anchor", forged); err == nil || !strings.Contains(out, "not made with this master key") {
		t.Fatalf("an altered anchor must be refused: %v\n%s", err, out)
	}

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "signet.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM audit_events WHERE seq >= 2`); err != nil {
		t.Fatal(err)
	}
	if out, err := cli(t, dir, "audit", "verify"); err == nil || !strings.Contains(out, "BROKEN at event 2") || !strings.Contains(out, "registered event 3 as its head") {
		t.Fatalf("the head the writer registered must reveal the deleted events: %v\n%s", err, out)
	}
	if _, err := db.Exec(`UPDATE audit_chains SET chain_seq = 1, hash = (SELECT hash FROM audit_events WHERE seq = 1)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if out, err := cli(t, dir, "audit", "verify"); err != nil || !strings.Contains(out, "OK: 1 events") {
		t.Fatalf("without an anchor, events deleted with their registration rewound go unseen (documented): %v\n%s", err, out)
	}
	out, err = cli(t, dir, "audit", "verify", "--anchor", anchor)
	if err == nil || !strings.Contains(out, "BROKEN at event 2") || !strings.Contains(out, "deleted from the end") {
		t.Fatalf("the anchor must reveal the deleted events: %v\n%s", err, out)
	}
}

// lineAfter returns the rest of the first line of out that starts with prefix.
func lineAfter(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			return rest
		}
	}
	return ""
}

// TestCLICommandsShareTheHostsAuditChain: on PostgreSQL a server appends to a chain of its own and
// the CLI commands of a host to one chain between them (`host/cli`), not one chain per command.
func TestCLICommandsShareTheHostsAuditChain(t *testing.T) {
	dsn, dir := initPostgres(t)
	for _, name := range []string{"one", "two", "three"} {
		if _, stderr, err := runCLI("client", "create", "--name", name, "--db", dsn, "--data-dir", dir); err != nil {
			t.Fatalf("client create %s: %v\n%s", name, err, stderr)
		}
	}
	out, stderr, err := runCLI("audit", "verify", "--json", "--db", dsn, "--data-dir", dir)
	if err != nil {
		t.Fatalf("audit verify: %v\n%s", err, stderr)
	}
	var res audit.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	cli := 0
	for _, c := range res.Chains {
		if c.Chain == server.CLIAuditChain() {
			cli = c.Events
		}
	}
	if !res.Intact || cli != 3 {
		t.Fatalf("three CLI commands: %d events in chain %s, want 3 (chains %+v)", cli, server.CLIAuditChain(), res.Chains)
	}
}

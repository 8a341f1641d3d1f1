package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

const (
	grantJWT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	grantTE  = "urn:ietf:params:oauth:grant-type:token-exchange"
)

func grantsOf(t *testing.T, v map[string]any) []string {
	t.Helper()
	raw, ok := v["grant_types"].([]any)
	if !ok {
		t.Fatalf("no grant_types list in %v", v)
	}
	out := []string{}
	for _, g := range raw {
		out = append(out, g.(string))
	}
	return out
}

// TestCLIServiceAccountGrants: accounts are created with the default grants or the ones asked for
// (short names accepted, as for clients); update adds, removes or (explicitly) replaces; list and
// show print the list; every change is audited with the list before and after.
func TestCLIServiceAccountGrants(t *testing.T) {
	dir := t.TempDir()
	var bot, agent map[string]any
	cliJSON(t, dir, &bot, "serviceaccount", "create", "--name", "ci-bot")
	if got := grantsOf(t, bot); !slices.Equal(got, []string{"client_credentials", grantJWT}) {
		t.Fatalf("default grants: %v", got)
	}
	cliJSON(t, dir, &agent, "serviceaccount", "create", "--name", "agent", "--grant", "token-exchange", "--grant", "client_credentials,"+grantTE)
	if got := grantsOf(t, agent); !slices.Equal(got, []string{grantTE, "client_credentials"}) {
		t.Fatalf("short and full names, each once: %v", got)
	}
	if _, err := cli(t, dir, "serviceaccount", "create", "--name", "x", "--grant", "password"); err == nil || !strings.Contains(err.Error(), "supported grants") {
		t.Fatalf("unknown grant: %v", err)
	}
	var app map[string]any
	cliJSON(t, dir, &app, "client", "create", "--name", "relay", "--grant", "jwt-bearer")
	if got := grantsOf(t, app); !slices.Equal(got, []string{grantJWT}) {
		t.Fatalf("clients read --grant the same way: %v", got)
	}

	update := func(ref string, args ...string) []string {
		t.Helper()
		var v map[string]any
		cliJSON(t, dir, &v, append([]string{"serviceaccount", "update", ref}, args...)...)
		return grantsOf(t, v)
	}
	// The command the token endpoint's refusal names: by ID, with the full grant name.
	if got := update(bot["id"].(string), "--add-grant", grantTE); !slices.Equal(got, []string{"client_credentials", grantJWT, grantTE}) {
		t.Fatalf("--add-grant keeps the others: %v", got)
	}
	if got := update("ci-bot", "--add-grant", "token-exchange"); !slices.Equal(got, []string{"client_credentials", grantJWT, grantTE}) {
		t.Fatalf("adding a grant it has changes nothing: %v", got)
	}
	if got := update("ci-bot", "--remove-grant", "jwt-bearer", "--add-grant", "refresh_token"); !slices.Equal(got, []string{"client_credentials", grantTE, "refresh_token"}) {
		t.Fatalf("--remove-grant with --add-grant: %v", got)
	}
	if got := update("ci-bot", "--grant", "jwt-bearer"); !slices.Equal(got, []string{grantJWT}) {
		t.Fatalf("--grant replaces the list: %v", got)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "nothing to change"},
		{[]string{"--grant", "jwt-bearer", "--add-grant", "refresh_token"}, "replaces the whole list"},
		{[]string{"--remove-grant", "token-exchange"}, "does not have it"},
		{[]string{"--add-grant", "refresh_token", "--remove-grant", "refresh_token"}, "both name"},
		{[]string{"--add-grant", "implicit"}, "supported grants"},
	} {
		if _, err := cli(t, dir, append([]string{"serviceaccount", "update", "ci-bot"}, tc.args...)...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("update %v: want an error containing %q, got %v", tc.args, tc.want, err)
		}
	}
	if _, err := cli(t, dir, "serviceaccount", "update", "nobody", "--add-grant", "refresh_token"); err == nil || !strings.Contains(err.Error(), "no service account") {
		t.Fatalf("unknown account: %v", err)
	}

	var shown map[string]any
	cliJSON(t, dir, &shown, "serviceaccount", "show", bot["id"].(string))
	if got := grantsOf(t, shown); shown["name"] != "ci-bot" || !slices.Equal(got, []string{grantJWT}) {
		t.Fatalf("show: %v", shown)
	}
	var list []map[string]any
	cliJSON(t, dir, &list, "serviceaccount", "list")
	if len(list) != 2 || !slices.Equal(grantsOf(t, list[0]), []string{grantTE, "client_credentials"}) || !slices.Equal(grantsOf(t, list[1]), []string{grantJWT}) {
		t.Fatalf("list: %v", list)
	}
	if out, err := cli(t, dir, "serviceaccount", "list"); err != nil || !strings.Contains(out, "GRANTS") || !strings.Contains(out, grantJWT) {
		t.Fatalf("list table: %v\n%s", err, out)
	}

	var events []map[string]any
	cliJSON(t, dir, &events, "audit", "list", "--type", "serviceaccount.changed", "--subject", bot["id"].(string))
	type details struct {
		Action   string   `json:"action"`
		Grants   []string `json:"grant_types"`
		Previous []string `json:"previous_grant_types"`
	}
	var got []details
	for _, e := range events {
		var d details
		json.Unmarshal(mustJSON(e["details"]), &d)
		got = append(got, d)
	}
	want := []details{
		{"created", []string{"client_credentials", grantJWT}, nil},
		{"updated", []string{"client_credentials", grantJWT, grantTE}, []string{"client_credentials", grantJWT}},
		{"updated", []string{"client_credentials", grantTE, "refresh_token"}, []string{"client_credentials", grantJWT, grantTE}},
		{"updated", []string{grantJWT}, []string{"client_credentials", grantTE, "refresh_token"}},
	}
	if !slices.EqualFunc(got, want, func(a, b details) bool {
		return a.Action == b.Action && slices.Equal(a.Grants, b.Grants) && slices.Equal(a.Previous, b.Previous)
	}) {
		t.Fatalf("audit of grant changes (unchanged and refused updates record nothing):\n got %+v\nwant %+v", got, want)
	}
}

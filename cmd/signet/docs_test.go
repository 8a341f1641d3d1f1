package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// docCommands returns every `signet …` command line the docs show: inline code spans, lines of sh
// blocks (run or not; continuations joined) and `$ ` lines of console transcripts, each with where
// it was found.
func docCommands(t *testing.T) map[string]string {
	t.Helper()
	inline := regexp.MustCompile("``? ?(signet [^`]+?) ?``?")
	found := map[string]string{}
	for _, f := range docFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, block := range fences(t, f) {
			lang := block.lang()
			if lang != "sh" && lang != "console" {
				continue
			}
			text = strings.Replace(text, block.body, "", 1) // inline spans are looked for outside blocks
			for _, line := range strings.Split(strings.ReplaceAll(block.body, "\\\n", " "), "\n") {
				if lang == "console" {
					cmd, ok := strings.CutPrefix(line, "$ ")
					if !ok {
						continue
					}
					line = cmd
				}
				line = strings.ReplaceAll(line, "go run ./cmd/signet ", "signet ")
				if i := strings.Index(line, "signet "); i >= 0 && (i == 0 || strings.ContainsRune(" ($", rune(line[i-1]))) {
					found[strings.TrimSpace(line[i:])] = filepath.Base(f)
				}
			}
		}
		for _, m := range inline.FindAllStringSubmatch(text, -1) {
			found[m[1]] = filepath.Base(f)
		}
	}
	return found
}

// label matches docs' `signet …` spans that are not commands but key-derivation labels
// ("signet audit chain v1").
var label = regexp.MustCompile(`^signet [a-z ]+ v[0-9]+$`)

// TestDocsNameRealCommands: every `signet …` command the README and docs/ show exists, with the
// flags shown (a newcomer copying `signet user update --unlock` must not meet "unknown command").
func TestDocsNameRealCommands(t *testing.T) {
	root := newRoot()
	for _, bad := range []string{"signet user update --unlock", "signet client update X --add-grnt token-exchange", "signet role frobnicate"} {
		if len(checkDocCommand(root, bad)) == 0 {
			t.Errorf("the check lets %q through", bad)
		}
	}
	found := docCommands(t)
	if len(found) < 40 {
		t.Fatalf("found only %d commands in the docs; the scan is broken", len(found))
	}
	for line, file := range found {
		if label.MatchString(strings.Join(strings.Fields(line), " ")) {
			continue
		}
		for _, problem := range checkDocCommand(root, line) {
			t.Errorf("%s: `%s`: %s", file, line, problem)
		}
	}
}

// checkDocCommand says what is wrong with a documented command line: a command or subcommand that
// does not exist, or a flag the command lacks. Placeholders (<id>, …, $VAR, NAME) are arguments;
// "a|b" in the command path names each alternative.
func checkDocCommand(root *cobra.Command, line string) []string {
	var problems []string
	words := strings.Fields(line)[1:]
	paths := [][]string{nil}
	i := 0
	for ; i < len(words); i++ {
		w := words[i]
		if strings.HasPrefix(w, "-") || strings.ContainsAny(w, "<>…$\"'(){}[]=/.*") || (strings.ToUpper(w) == w && strings.ToLower(w) != w) {
			break
		}
		alts := strings.Split(w, "|")
		cmd, _, err := root.Find(paths[0])
		if err != nil || !hasSub(cmd, alts[0]) {
			break
		}
		var next [][]string
		for _, p := range paths {
			for _, a := range alts {
				next = append(next, append(append([]string(nil), p...), a))
			}
		}
		paths = next
	}
	for _, p := range paths {
		cmd, rest, err := root.Find(p)
		if err != nil || len(rest) > 0 || (len(p) > 0 && cmd.Name() != p[len(p)-1] && !cmd.HasAlias(p[len(p)-1])) {
			problems = append(problems, fmt.Sprintf("no command %q", strings.Join(p, " ")))
			continue
		}
		if cmd.HasSubCommands() { // a command group (runnable only to refuse unknown subcommands)
			if i < len(words) && !strings.HasPrefix(words[i], "-") && !strings.ContainsAny(words[i], "<>…|") {
				problems = append(problems, fmt.Sprintf("%q has no subcommand %q", cmd.CommandPath(), words[i]))
			}
			continue
		}
		for _, w := range words[i:] {
			if !strings.HasPrefix(w, "--") || len(w) == 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimPrefix(w, "--"), "=")
			name = strings.TrimRight(name, "`,.;:)")
			if strings.ContainsAny(name, "<>…|") || name == "" {
				continue
			}
			if cmd.Flags().Lookup(name) == nil && cmd.InheritedFlags().Lookup(name) == nil && root.PersistentFlags().Lookup(name) == nil {
				problems = append(problems, fmt.Sprintf("%s has no flag --%s", cmd.CommandPath(), name))
			}
		}
	}
	return problems
}

func hasSub(cmd *cobra.Command, name string) bool {
	for _, c := range cmd.Commands() {
		if c.Name() == name || c.HasAlias(name) {
			return true
		}
	}
	return false
}

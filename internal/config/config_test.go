package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestREADMEListsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Settings {
		if !strings.Contains(string(readme), "`--"+s.Name+"`") || !strings.Contains(string(readme), s.Env()) {
			t.Errorf("README's configuration table lacks --%s / %s", s.Name, s.Env())
		}
	}
}

func TestPrecedenceFlagEnvFileDefault(t *testing.T) {
	file := filepath.Join(t.TempDir(), "signet.yaml")
	os.WriteFile(file, []byte("addr: \":7000\"\nleeway: 30s\nlog-level: debug\nissuer: https://file.example\n"), 0o600)
	t.Setenv("SIGNET_LEEWAY", "45s")
	t.Setenv("SIGNET_ISSUER", "https://env.example")
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	Flags(fs)
	if err := fs.Parse([]string{"--config", file, "--issuer", "https://flag.example"}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(fs)
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != "https://flag.example" || c.Leeway != 45*time.Second || c.Addr != ":7000" || c.LogLevel != "debug" || c.AccessTTL != 15*time.Minute {
		t.Fatalf("precedence wrong: %+v", c)
	}
}

func TestInvalidSettingsAreExplained(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--issuer", "http://x/"}, "must not end with a slash"},
		{[]string{"--issuer", "ftp://x"}, "http(s) URL"},
		{[]string{"--signing-alg", "HS256"}, "use ES256, EdDSA or RS256"},
		{[]string{"--leeway", "soon"}, "leeway (from --leeway)"},
		{[]string{"--tls-cert", "c.pem"}, "set together"},
	} {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		Flags(fs)
		fs.Parse(tc.args)
		if _, err := Load(fs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: want error containing %q, got %v", tc.args, tc.want, err)
		}
	}
	file := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(file, []byte("isuer: x\n"), 0o600)
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	Flags(fs)
	fs.Parse([]string{"--config", file})
	if _, err := Load(fs); err == nil || !strings.Contains(err.Error(), `unknown setting "isuer"`) {
		t.Errorf("typo in YAML: %v", err)
	}
}

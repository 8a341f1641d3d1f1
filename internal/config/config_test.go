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
		{[]string{"--leeway", "-1s"}, "leeway (from --leeway)"},
		{[]string{"--db", "postgres://"}, "lacks the host and the database name"},
		{[]string{"--db", "postgres://u@h"}, "lacks the database name"},
		{[]string{"--master-key", "notbase64"}, "master-key (from --master-key): master key must be 32 bytes"},
		{[]string{"--access-token-ttl", "0s"}, "access-token-ttl (from --access-token-ttl)"},
		{[]string{"--tls-cert", "c.pem"}, "set together"},
	} {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		Flags(fs)
		fs.Parse(tc.args)
		if _, err := Load(fs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: want error containing %q, got %v", tc.args, tc.want, err)
		}
	}
	t.Setenv("SIGNET_MASTER_KEY", "notbase64")
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	Flags(fs)
	if _, err := Load(fs); err == nil || !strings.Contains(err.Error(), "master-key (from SIGNET_MASTER_KEY)") {
		t.Errorf("a key from the environment is reported as such: %v", err)
	}
	os.Unsetenv("SIGNET_MASTER_KEY")
	file := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(file, []byte("isuer: x\n"), 0o600)
	fs = pflag.NewFlagSet("t", pflag.ContinueOnError)
	Flags(fs)
	fs.Parse([]string{"--config", file})
	if _, err := Load(fs); err == nil || !strings.Contains(err.Error(), `unknown setting "isuer"`) {
		t.Errorf("typo in YAML: %v", err)
	}
}

// TestFlagsAreTyped: a duration or number that does not parse is refused while the flags are
// parsed, naming the flag and saying what to write, without Go's parser in the message.
func TestFlagsAreTyped(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--rate-limit", "abc"}, `invalid argument "abc" for "--rate-limit" flag: "abc" is not a number`},
		{[]string{"--leeway", "soon"}, `invalid argument "soon" for "--leeway" flag: "soon" is not a duration`},
		{[]string{"--token-cache-size", "1e3"}, `"--token-cache-size" flag: "1e3" is not a whole number`},
		{[]string{"--log-level", "loud"}, `invalid argument "loud" for "--log-level" flag: "loud" is not one of debug, info, warn, error`},
		{[]string{"--log-format", "yaml"}, `invalid argument "yaml" for "--log-format" flag: "yaml" is not one of text, json`},
	} {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		Flags(fs)
		err := fs.Parse(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "strconv") {
			t.Errorf("%v: want %q, got %v", tc.args, tc.want, err)
		}
	}
	t.Setenv("SIGNET_LOG_LEVEL", "loud")
	if _, err := Load(pflag.NewFlagSet("t", pflag.ContinueOnError)); err == nil || !strings.Contains(err.Error(), `log-level (from SIGNET_LOG_LEVEL): "loud" is not a log level`) {
		t.Errorf("log level from the environment: %v", err)
	}
	os.Unsetenv("SIGNET_LOG_LEVEL")
	t.Setenv("SIGNET_RATE_LIMIT", "fast")
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	Flags(fs)
	if _, err := Load(fs); err == nil || !strings.Contains(err.Error(), `rate-limit (from SIGNET_RATE_LIMIT): "fast" is not a number`) {
		t.Errorf("environment: %v", err)
	}
	fs = pflag.NewFlagSet("t", pflag.ContinueOnError)
	Flags(fs)
	if f := fs.Lookup("rate-limit"); f.Value.Type() != "number" || fs.Lookup("leeway").Value.Type() != "duration" {
		t.Errorf("help shows the type: %s", f.Value.Type())
	}
}

// TestServeChecks: TLS files are read before anything starts, and a changed --addr with the default
// issuer is warned about.
func TestServeChecks(t *testing.T) {
	load := func(args ...string) *Config {
		t.Helper()
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		Flags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		c, err := Load(fs)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	if _, err := load("--tls-cert", missing, "--tls-key", missing).CheckServe(); err == nil || !strings.Contains(err.Error(), "tls-cert (from --tls-cert)") || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing TLS file: %v", err)
	}
	w, err := load("--addr", ":9090").CheckServe()
	if err != nil || len(w) != 1 || !strings.Contains(w[0], "issuer is still the default") {
		t.Errorf("addr changed, issuer default: %v %v", w, err)
	}
	w, err = load("--addr", "127.0.0.1:9090", "--issuer", "http://localhost:8080").CheckServe()
	if err != nil || len(w) != 1 || !strings.Contains(w[0], "make --issuer and --addr agree") {
		t.Errorf("addr and issuer disagree: %v %v", w, err)
	}
	if w, err := load("--addr", "127.0.0.1:9090", "--issuer", "http://127.0.0.1:9090").CheckServe(); err != nil || len(w) != 0 {
		t.Errorf("consistent: %v %v", w, err)
	}
}

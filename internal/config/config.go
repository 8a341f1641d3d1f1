// Package config holds every setting of a Signet server and where it comes from: flags, then
// environment (SIGNET_*), then an optional YAML file, then defaults. The table in Settings is the
// single list the README and `signet serve --help` are checked against.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// Config is a server's configuration.
type Config struct {
	Issuer        string
	Addr          string
	DataDir       string
	DB            string
	MasterKey     string
	LogFormat     string
	LogLevel      string
	TLSCert       string
	TLSKey        string
	SigningAlg    string
	AccessTTL     time.Duration
	MaxAccessTTL  time.Duration
	AssertionTTL  time.Duration
	Leeway        time.Duration
	CacheSize     int
	PollInterval  time.Duration
	RateLimit     float64
	RateBurst     int
	AccountFormat string
	PolicyFile    string
	WebhookURL    string
	DebugAddr     string

	// IssuerDefaulted reports that no flag, variable or file set the issuer, so commands may use
	// the one the server recorded in the database.
	IssuerDefaulted bool
}

// Setting describes one configuration value.
type Setting struct {
	Name    string // flag name; the YAML key is the same; env is SIGNET_ + upper snake case
	Default string
	Usage   string
	field   func(c *Config) any
}

// Env returns the environment variable of a setting.
func (s Setting) Env() string {
	return "SIGNET_" + strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
}

// Settings lists every setting, in the order help and docs show them.
var Settings = []Setting{
	{"issuer", "http://localhost:8080", "issuer URL: the iss of every token; clients must use it exactly (no trailing slash)", func(c *Config) any { return &c.Issuer }},
	{"addr", ":8080", "listen address", func(c *Config) any { return &c.Addr }},
	{"data-dir", "./signet-data", "directory for the SQLite database and the development master key", func(c *Config) any { return &c.DataDir }},
	{"db", "", "database: sqlite:<path> (default <data-dir>/signet.db) or postgres://user@host/db", func(c *Config) any { return &c.DB }},
	{"master-key", "", "base64 32-byte key that encrypts signing keys and keys the hashes of secrets and opaque tokens; default: generated into <data-dir>/master.key (0600)", func(c *Config) any { return &c.MasterKey }},
	{"log-format", "text", "log format: text or json", func(c *Config) any { return &c.LogFormat }},
	{"log-level", "info", "log level: debug, info, warn, error", func(c *Config) any { return &c.LogLevel }},
	{"tls-cert", "", "TLS certificate file (serve HTTPS when set with --tls-key)", func(c *Config) any { return &c.TLSCert }},
	{"tls-key", "", "TLS private key file", func(c *Config) any { return &c.TLSKey }},
	{"signing-alg", "ES256", "default signing algorithm: ES256, EdDSA or RS256", func(c *Config) any { return &c.SigningAlg }},
	{"access-token-ttl", "15m", "access token lifetime when a client sets none", func(c *Config) any { return &c.AccessTTL }},
	{"max-access-token-ttl", "12h", "upper bound for every access token lifetime", func(c *Config) any { return &c.MaxAccessTTL }},
	{"max-assertion-lifetime", "1h", "longest accepted client assertion lifetime (exp - iat); ZITADEL clients use exactly 1h", func(c *Config) any { return &c.AssertionTTL }},
	{"leeway", "1m", "clock skew tolerated on exp, nbf and iat", func(c *Config) any { return &c.Leeway }},
	{"token-cache-size", "100000", "resolved tokens kept in memory per process", func(c *Config) any { return &c.CacheSize }},
	{"poll-interval", "250ms", "how often a replica reads the change feed (bounds cache staleness across replicas)", func(c *Config) any { return &c.PollInterval }},
	{"rate-limit", "0", "requests per second allowed per client IP at the token, introspection and revocation endpoints (0: unlimited)", func(c *Config) any { return &c.RateLimit }},
	{"rate-burst", "100", "burst size for --rate-limit", func(c *Config) any { return &c.RateBurst }},
	{"serviceaccount-token-format", "jwt", "access token format for service accounts: jwt or opaque", func(c *Config) any { return &c.AccountFormat }},
	{"webhook-url", "", "URL that receives a signed security event (RFC 8417) when an exchange session opens under a rule with notify_subject", func(c *Config) any { return &c.WebhookURL }},
	{"debug-addr", "", "address for Go's profiler (net/http/pprof), e.g. 127.0.0.1:6060; keep it on loopback; empty: off", func(c *Config) any { return &c.DebugAddr }},
	{"policy-file", "", "YAML file of token-exchange rules, added to the stored ones and reloaded on SIGHUP", func(c *Config) any { return &c.PolicyFile }},
}

// Flags registers every setting on fs, plus --config for the YAML file.
func Flags(fs *pflag.FlagSet) {
	fs.String("config", "", "YAML file with settings (keys are the flag names)")
	for _, s := range Settings {
		fs.String(s.Name, s.Default, s.Usage+" [$"+s.Env()+"]")
	}
}

// Load resolves the configuration: flags set explicitly, then environment, then the YAML file,
// then defaults.
func Load(fs *pflag.FlagSet) (*Config, error) {
	file := map[string]any{}
	path, _ := fs.GetString("config")
	if path == "" {
		path = os.Getenv("SIGNET_CONFIG")
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if err := yaml.Unmarshal(b, &file); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for k := range file {
			if !known(k) {
				return nil, fmt.Errorf("%s: unknown setting %q", path, k)
			}
		}
	}
	c := &Config{}
	for _, s := range Settings {
		value, source := s.Default, "default"
		if v, ok := file[s.Name]; ok {
			value, source = fmt.Sprint(v), "config file"
		}
		if v, ok := os.LookupEnv(s.Env()); ok {
			value, source = v, s.Env()
		}
		if f := fs.Lookup(s.Name); f != nil && f.Changed {
			value, source = f.Value.String(), "--"+s.Name
		}
		if err := set(s.field(c), value); err != nil {
			return nil, fmt.Errorf("%s (from %s): %w", s.Name, source, err)
		}
		if s.Name == "issuer" {
			c.IssuerDefaulted = source == "default"
		}
	}
	return c, c.validate()
}

func known(name string) bool {
	for _, s := range Settings {
		if s.Name == name {
			return true
		}
	}
	return false
}

func set(dst any, v string) error {
	switch p := dst.(type) {
	case *string:
		*p = v
	case *time.Duration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		*p = d
	case *int:
		n, err := strconv.Atoi(v)
		if err != nil {
			return err
		}
		*p = n
	case *float64:
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return err
		}
		*p = n
	}
	return nil
}

func (c *Config) validate() error {
	u, err := url.Parse(c.Issuer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("issuer %q must be an http(s) URL without query or fragment", c.Issuer)
	}
	if strings.HasSuffix(c.Issuer, "/") {
		return fmt.Errorf("issuer %q must not end with a slash: clients compare it exactly", c.Issuer)
	}
	switch c.SigningAlg {
	case "ES256", "EdDSA", "RS256":
	default:
		return fmt.Errorf("signing-alg %q: use ES256, EdDSA or RS256", c.SigningAlg)
	}
	switch c.AccountFormat {
	case "jwt", "opaque":
	default:
		return fmt.Errorf("serviceaccount-token-format %q: use jwt or opaque", c.AccountFormat)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls-cert and tls-key must be set together")
	}
	if c.WebhookURL != "" {
		if u, err := url.Parse(c.WebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("webhook-url %q must be an http(s) URL", c.WebhookURL)
		}
	}
	if c.AccessTTL <= 0 || c.MaxAccessTTL <= 0 || c.AssertionTTL <= 0 || c.PollInterval <= 0 {
		return errors.New("durations must be positive")
	}
	return nil
}

// DSN returns the database to open: --db, or SQLite under the data directory.
func (c *Config) DSN() string {
	if c.DB != "" {
		return c.DB
	}
	return "sqlite:" + filepath.Join(c.DataDir, "signet.db")
}

// Defaults returns the configuration with every setting at its default (ignoring environment).
func Defaults() (*Config, error) {
	c := &Config{}
	for _, s := range Settings {
		if err := set(s.field(c), s.Default); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Package config holds every setting of a Signet server and where it comes from: flags, then
// environment (SIGNET_*), then an optional YAML file, then defaults. The table in Settings is the
// single list the README and `signet serve --help` are checked against.
package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/signet-id/signet/internal/secrets"
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

	// ConfigFile is the YAML file the settings were read from, if any.
	ConfigFile string

	sources map[string]string // setting name → where its value came from

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

// storeSettings are the settings every command needs to reach the server's data (and to log like it);
// the others belong to `signet serve` alone.
var storeSettings = map[string]bool{"data-dir": true, "db": true, "master-key": true, "log-format": true, "log-level": true}

// Flags registers every setting on fs, plus --config for the YAML file.
func Flags(fs *pflag.FlagSet) {
	StoreFlags(fs)
	ServerFlags(fs)
}

// StoreFlags registers --config and the settings that say where the data is: what every command
// shares with the server.
func StoreFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "YAML file with settings (keys are the flag names) [$SIGNET_CONFIG]")
	for _, s := range Settings {
		if storeSettings[s.Name] {
			s.register(fs)
		}
	}
}

// ServerFlags registers the settings only the server uses.
func ServerFlags(fs *pflag.FlagSet) {
	for _, s := range Settings {
		if !storeSettings[s.Name] {
			s.register(fs)
		}
	}
}

func (s Setting) register(fs *pflag.FlagSet) {
	v := &flagValue{kind: kindOf(s.field(&Config{})), value: s.Default}
	fs.Var(v, s.Name, s.Usage+" [$"+s.Env()+"]")
	fs.Lookup(s.Name).DefValue = s.Default
}

// flagValue is a setting's flag, typed for help (duration, int, number) and checked as it is parsed,
// so a wrong value is reported with the flag's name before anything starts.
type flagValue struct{ kind, value string }

func (f *flagValue) String() string { return f.value }
func (f *flagValue) Type() string   { return f.kind }
func (f *flagValue) Set(v string) error {
	if err := parse(f.kind, v, nil); err != nil {
		return err
	}
	f.value = v
	return nil
}

func kindOf(dst any) string {
	switch dst.(type) {
	case *time.Duration:
		return "duration"
	case *int:
		return "int"
	case *float64:
		return "number"
	}
	return "string"
}

// Load resolves the configuration: flags set explicitly, then environment, then the YAML file,
// then defaults. Settings without a flag on fs (the server's, for commands other than serve) come
// from the environment, the file or their defaults.
func Load(fs *pflag.FlagSet) (*Config, error) {
	file := map[string]any{}
	path, source := "", ""
	if f := fs.Lookup("config"); f != nil && f.Changed {
		path, source = f.Value.String(), "--config"
	} else if v := os.Getenv("SIGNET_CONFIG"); v != "" {
		path, source = v, "SIGNET_CONFIG"
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config file (from %s): %w", source, err)
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
	c := &Config{ConfigFile: path, sources: map[string]string{}}
	for _, s := range Settings {
		value, source := s.Default, "default"
		if v, ok := file[s.Name]; ok {
			value, source = fmt.Sprint(v), path
		}
		if v, ok := os.LookupEnv(s.Env()); ok {
			value, source = v, s.Env()
		}
		if f := fs.Lookup(s.Name); f != nil && f.Changed {
			value, source = f.Value.String(), "--"+s.Name
		}
		if err := parse(kindOf(s.field(c)), value, s.field(c)); err != nil {
			return nil, fmt.Errorf("%s (from %s): %w", s.Name, source, err)
		}
		c.sources[s.Name] = source
		if s.Name == "issuer" {
			c.IssuerDefaulted = source == "default"
		}
	}
	return c, c.validate()
}

// Source says where a setting's value came from: "--name", "SIGNET_NAME", the config file's path,
// or "default".
func (c *Config) Source(name string) string {
	if s, ok := c.sources[name]; ok {
		return s
	}
	return "default"
}

// named prefixes a problem with the setting and where its value came from.
func (c *Config) named(name string, format string, args ...any) error {
	return fmt.Errorf("%s (from %s): %s", name, c.Source(name), fmt.Sprintf(format, args...))
}

func known(name string) bool {
	for _, s := range Settings {
		if s.Name == name {
			return true
		}
	}
	return false
}

// parse checks v as a value of kind and, when dst is not nil, stores it there.
func parse(kind, v string, dst any) error {
	switch kind {
	case "duration":
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a duration: write a number with a unit, such as 90s, 15m or 12h", v)
		}
		if p, ok := dst.(*time.Duration); ok {
			*p = d
		}
	case "int":
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", v)
		}
		if p, ok := dst.(*int); ok {
			*p = n
		}
	case "number":
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number (such as 50 or 0.5)", v)
		}
		if p, ok := dst.(*float64); ok {
			*p = n
		}
	default:
		if p, ok := dst.(*string); ok {
			*p = v
		}
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
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return c.named("log-level", "%q is not a log level: use debug, info, warn or error", c.LogLevel)
	}
	switch strings.ToLower(c.LogFormat) {
	case "text", "json":
	default:
		return c.named("log-format", "%q is not a log format: use text or json", c.LogFormat)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls-cert and tls-key must be set together")
	}
	if c.WebhookURL != "" {
		if u, err := url.Parse(c.WebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("webhook-url %q must be an http(s) URL", c.WebhookURL)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"access-token-ttl", c.AccessTTL}, {"max-access-token-ttl", c.MaxAccessTTL}, {"max-assertion-lifetime", c.AssertionTTL}, {"poll-interval", c.PollInterval}} {
		if d.v <= 0 {
			return c.named(d.name, "%s: the duration must be positive", d.v)
		}
	}
	if c.Leeway < 0 {
		return c.named("leeway", "%s: the leeway cannot be negative", c.Leeway)
	}
	if c.AccessTTL > c.MaxAccessTTL {
		return c.named("access-token-ttl", "%s is longer than max-access-token-ttl (%s)", c.AccessTTL, c.MaxAccessTTL)
	}
	if c.CacheSize < 0 {
		return c.named("token-cache-size", "%d: use 0 or more", c.CacheSize)
	}
	if c.RateLimit < 0 {
		return c.named("rate-limit", "%g: use 0 (off) or a positive number of requests per second", c.RateLimit)
	}
	if c.RateLimit > 0 && c.RateBurst < 1 {
		return c.named("rate-burst", "%d: use at least 1 when --rate-limit is set", c.RateBurst)
	}
	if err := checkDSN(c.DSN()); err != nil {
		if c.DB == "" {
			return c.named("data-dir", "%v", err)
		}
		return c.named("db", "%v", err)
	}
	if c.MasterKey != "" {
		if _, err := secrets.ParseMasterKey(c.MasterKey); err != nil {
			return c.named("master-key", "%v", err)
		}
	}
	return nil
}

// checkDSN refuses a database name that would let defaults choose the database: a PostgreSQL URL
// must name its host and database, a SQLite one its file.
func checkDSN(dsn string) error {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		u, err := url.Parse(dsn)
		if err != nil {
			return fmt.Errorf("not a valid PostgreSQL URL: %v", err)
		}
		q := u.Query()
		var missing []string
		if u.Hostname() == "" && q.Get("host") == "" {
			missing = append(missing, "the host")
		}
		if strings.Trim(u.Path, "/") == "" && q.Get("dbname") == "" {
			missing = append(missing, "the database name")
		}
		if len(missing) > 0 {
			return fmt.Errorf("%q lacks %s: write postgres://USER@HOST:5432/DATABASE (left out, the driver's defaults would choose a database for you)", u.Redacted(), strings.Join(missing, " and "))
		}
	case strings.HasPrefix(dsn, "sqlite:"):
		if strings.TrimPrefix(dsn, "sqlite:") == "" {
			return errors.New(`"sqlite:" lacks the file: write sqlite:<path>`)
		}
	case strings.Contains(dsn, "://"):
		return fmt.Errorf("%q: use sqlite:<path> or postgres://USER@HOST:5432/DATABASE", dsn)
	}
	return nil
}

// CheckServe checks what only the server needs (TLS files readable and matching) and returns
// warnings about settings that disagree, such as a changed --addr with the default --issuer.
func (c *Config) CheckServe() (warnings []string, err error) {
	if c.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			return nil, fmt.Errorf("tls-cert (from %s) and tls-key (from %s): %v", c.Source("tls-cert"), c.Source("tls-key"), err)
		}
	}
	_, addrPort, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return nil, c.named("addr", "%q is not a listen address: write HOST:PORT or :PORT", c.Addr)
	}
	iss, _ := url.Parse(c.Issuer)
	issPort := iss.Port()
	if issPort == "" {
		issPort = map[string]string{"http": "80", "https": "443"}[iss.Scheme]
	}
	loopback := iss.Hostname() == "localhost" || net.ParseIP(iss.Hostname()).IsLoopback()
	switch {
	case c.Source("addr") != "default" && c.IssuerDefaulted:
		warnings = append(warnings, fmt.Sprintf("addr is %s (from %s) but issuer is still the default %s: tokens name that issuer and clients fetch discovery from it; set --issuer to the URL clients use", c.Addr, c.Source("addr"), c.Issuer))
	case loopback && addrPort != "0" && addrPort != issPort:
		warnings = append(warnings, fmt.Sprintf("issuer %s is on port %s but the server listens on %s: clients on this machine will not reach it; make --issuer and --addr agree", c.Issuer, issPort, c.Addr))
	}
	if c.TLSCert != "" && iss.Scheme == "http" {
		warnings = append(warnings, fmt.Sprintf("the server speaks HTTPS (--tls-cert) but issuer %s is http://", c.Issuer))
	}
	return warnings, nil
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
		if err := parse(kindOf(s.field(c)), s.Default, s.field(c)); err != nil {
			return nil, err
		}
	}
	return c, nil
}

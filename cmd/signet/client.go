package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/authorize"
	"github.com/signet-id/signet/internal/keys"
	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/server"
	"github.com/signet-id/signet/internal/store"
)

// clientView is the JSON shape of a client in CLI output.
type clientView struct {
	ClientID       string   `json:"client_id"`
	ClientSecret   string   `json:"client_secret,omitempty"`
	Name           string   `json:"name"`
	Type           string   `json:"type"`
	AuthMethod     string   `json:"auth_method"`
	GrantTypes     []string `json:"grant_types"`
	TokenFormat    string   `json:"token_format"`
	Alg            string   `json:"alg"`
	Audiences      []string `json:"audiences"`
	Scopes         []string `json:"scopes"`
	RedirectURIs   []string `json:"redirect_uris"`
	Roles          []string `json:"roles"`
	AccessTokenTTL int64    `json:"access_token_ttl"`
	Disabled       bool     `json:"disabled"`
	// Sign-in settings (web, spa and native clients).
	ThirdParty             bool     `json:"third_party"`
	RequireMFA             bool     `json:"require_mfa"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
	BackchannelLogoutURI   string   `json:"backchannel_logout_uri"`
}

func viewClient(c *store.Client, secret string) clientView {
	nonNil := func(v []string) []string {
		if v == nil {
			return []string{}
		}
		return v
	}
	return clientView{
		ClientID: c.ID, ClientSecret: secret, Name: c.Name, Type: c.Type, AuthMethod: c.AuthMethod,
		GrantTypes: nonNil(c.GrantTypes), TokenFormat: c.AccessTokenFormat, Alg: c.AccessTokenAlg,
		Audiences: nonNil(c.Audiences), Scopes: nonNil(c.Scopes), RedirectURIs: nonNil(c.RedirectURIs),
		Roles: nonNil(c.Roles), AccessTokenTTL: int64(c.AccessTokenTTL / time.Second), Disabled: c.Disabled,
		ThirdParty: c.ThirdParty, RequireMFA: c.RequireMFA, PostLogoutRedirectURIs: nonNil(c.PostLogoutRedirectURIs),
		BackchannelLogoutURI: c.BackchannelLogoutURI,
	}
}

// supportedGrants are the grant types clients and service accounts may be configured with today.
var supportedGrants = []string{oauth.GrantAuthorizationCode, oauth.GrantClientCredentials, oauth.GrantJWTBearer, oauth.GrantTokenExchange, oauth.GrantRefreshToken}

// grantURNPrefix may be left out of a --grant value: jwt-bearer, token-exchange.
const grantURNPrefix = "urn:ietf:params:oauth:grant-type:"

// parseGrants reads grant flags of clients and service accounts alike: each value is a supported
// grant type or its short name without grantURNPrefix. It returns full names, each once, in order.
func parseGrants(flag string, values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		g := v
		if !slices.Contains(supportedGrants, g) {
			g = grantURNPrefix + v
		}
		if !slices.Contains(supportedGrants, g) {
			return nil, fmt.Errorf("%s %q: supported grants are %s (the %s prefix may be left out)", flag, v, strings.Join(supportedGrants, ", "), grantURNPrefix)
		}
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out, nil
}

func clientCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "client", Short: "Manage OAuth clients (applications)"}
	cmd.AddCommand(clientCreateCmd(), clientListCmd(), clientShowCmd(), clientUpdateCmd(), clientDeleteCmd(), clientSecretCmd(), clientKeyCmd())
	return cmd
}

var slugRe = regexp.MustCompile(`[^a-z0-9]+`)

// newClientID makes a readable, unique, URL-safe client ID from a name.
func newClientID(name string) string {
	slug := strings.Trim(slugRe.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if len(slug) > 24 {
		slug = slug[:24]
	}
	if slug == "" {
		slug = "client"
	}
	return slug + "-" + secrets.NewID()[:8]
}

// signsIn reports whether a client type signs people in (authorization endpoint, redirect URIs).
func signsIn(typ string) bool {
	return typ == store.ClientWeb || typ == store.ClientSPA || typ == store.ClientNative
}

func clientCreateCmd() *cobra.Command {
	var name, typ, auth, format, alg, backchannel string
	var ttl time.Duration
	var thirdParty, requireMFA bool
	var grants, audiences, scopes, redirects, logoutRedirects, roles []string
	cmd := &cobra.Command{
		Use:   "create --name NAME [--type web|spa|native --redirect-uri URI]",
		Short: "Create a client; its secret (if any) is printed once",
		Long: `Create a client (audited); its secret, if it has one, is printed once.

An api client (the default type) gets tokens for itself with client_credentials. A web, spa or
native client signs people in (authorization code with PKCE): it needs --redirect-uri, and its
grants default to authorization_code and refresh_token. A web client authenticates with a secret;
spa and native clients are public (--auth none) and must use PKCE.
  signet client create --name portal --type web --redirect-uri https://portal.example.com/callback
  signet client create --name cli-app --type native --redirect-uri http://127.0.0.1/callback`,
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			ctx := cmd.Context()
			if name == "" {
				return errors.New("--name is required")
			}
			switch typ {
			case store.ClientAPI, store.ClientWeb, store.ClientSPA, store.ClientNative:
			default:
				return fmt.Errorf("--type %q: use api, web, spa or native", typ)
			}
			if auth == "" {
				auth = store.AuthSecretBasic
				if typ == store.ClientSPA || typ == store.ClientNative {
					auth = store.AuthNone
				}
			}
			if signsIn(typ) && len(redirects) == 0 {
				return usageError(fmt.Errorf("--redirect-uri is required for a %s client: where the browser returns after sign-in, e.g. %s", typ, exampleRedirect(typ)))
			}
			if !cmd.Flags().Changed("grant") {
				grants = []string{oauth.GrantClientCredentials}
				if signsIn(typ) {
					grants = []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken}
				}
			}
			if alg == "" {
				alg = s.Config.SigningAlg
			}
			now := time.Now()
			c := &store.Client{
				ID: newClientID(name), Name: name, Type: typ, AuthMethod: auth, GrantTypes: grants,
				Audiences: audiences, Scopes: scopes, RedirectURIs: redirects, Roles: roles,
				AccessTokenFormat: format, AccessTokenAlg: alg, AccessTokenTTL: ttl, CreatedAt: now, UpdatedAt: now,
				ThirdParty: thirdParty, RequireMFA: requireMFA, PostLogoutRedirectURIs: logoutRedirects, BackchannelLogoutURI: backchannel,
			}
			if err := validateClient(cmd, s, c); err != nil {
				return err
			}
			var secret string
			if auth == store.AuthSecretBasic || auth == store.AuthSecretPost {
				secret, c.SecretSalt, c.SecretHash = s.Secrets.NewSecret()
			}
			if err := recordChange(ctx, s, audit.TypeClientChanged, c.ID, map[string]any{"action": "created", "client": viewClient(c, "")}); err != nil {
				return err
			}
			if err := s.Store.CreateClient(ctx, c); err != nil {
				return explainStoreErr(err, "client "+c.ID)
			}
			return output(cmd, viewClient(c, secret), func(w io.Writer) {
				fmt.Fprintf(w, "Created client %q\n  client_id:     %s\n", c.Name, c.ID)
				if secret != "" {
					fmt.Fprintf(w, "  client_secret: %s\n  (shown once; store it now)\n", secret)
				}
				fmt.Fprintf(w, "  auth method:   %s\n  grants:        %s\n  access tokens: %s", c.AuthMethod, strings.Join(c.GrantTypes, ", "), c.AccessTokenFormat)
				if c.AccessTokenFormat == store.FormatJWT {
					fmt.Fprintf(w, " (%s)", c.AccessTokenAlg)
				}
				fmt.Fprintln(w)
				if len(c.RedirectURIs) > 0 {
					fmt.Fprintf(w, "  redirect URIs: %s\n", strings.Join(c.RedirectURIs, ", "))
				}
				if auth == store.AuthPrivateKeyJWT {
					fmt.Fprintf(w, "Next: signet client key create --client %s --out app.json\n", c.ID)
				}
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "display name (required)")
	f.StringVar(&typ, "type", store.ClientAPI, "api, web, spa or native")
	f.StringVar(&auth, "auth", "", "client_secret_basic, client_secret_post, private_key_jwt or none (default: none for spa/native, else client_secret_basic)")
	f.StringSliceVar(&grants, "grant", nil, "allowed grant type (repeatable; short names such as jwt-bearer work; default client_credentials for api clients, authorization_code and refresh_token for web, spa and native ones)")
	f.StringVar(&format, "token-format", store.FormatJWT, "access token format: jwt or opaque")
	f.StringVar(&alg, "alg", "", "JWT access token algorithm: ES256, EdDSA or RS256 (default: the server's --signing-alg)")
	f.DurationVar(&ttl, "ttl", 0, "access token lifetime (default: the server's --access-token-ttl)")
	f.StringSliceVar(&audiences, "audience", nil, "client ID of an API this client may request tokens for (repeatable)")
	f.StringSliceVar(&scopes, "scope", nil, "scope the client may request (repeatable; default: any)")
	f.StringSliceVar(&redirects, "redirect-uri", nil, "redirect URI, matched exactly (repeatable; required for web, spa and native clients): https, or http on 127.0.0.1, [::1] or localhost; native clients may use a private-use scheme such as com.example.app:/callback")
	f.StringSliceVar(&logoutRedirects, "post-logout-redirect-uri", nil, "where end_session may send the browser after sign-out (repeatable)")
	f.BoolVar(&thirdParty, "third-party", false, "ask each user's consent before the client gets anything (for applications you do not run)")
	f.BoolVar(&requireMFA, "require-mfa", false, "every sign-in to this client needs a second factor")
	f.StringVar(&backchannel, "backchannel-logout-uri", "", "https URI that receives a signed logout_token when a session the client got tokens from ends")
	f.StringSliceVar(&roles, "role", nil, "role to grant the client (repeatable), e.g. admin for introspect:any")
	return cmd
}

// exampleRedirect is a redirect URI a client of the type could register, for messages.
func exampleRedirect(typ string) string {
	if typ == store.ClientNative {
		return "http://127.0.0.1/callback or com.example.app:/callback"
	}
	return "https://app.example.com/callback"
}

// checkSignInURIs checks a client's redirect, post-logout and back-channel URIs the way the
// endpoints that use them will: a mistake is a usage error naming the flag.
func checkSignInURIs(c *store.Client) error {
	if !signsIn(c.Type) {
		if len(c.RedirectURIs) > 0 || len(c.PostLogoutRedirectURIs) > 0 || slices.Contains(c.GrantTypes, oauth.GrantAuthorizationCode) {
			return usageError(fmt.Errorf("a client of type %s signs no one in: redirect URIs and the authorization_code grant need --type web, spa or native", c.Type))
		}
	}
	if signsIn(c.Type) && len(c.RedirectURIs) == 0 {
		return usageError(fmt.Errorf("a %s client needs at least one redirect URI (--redirect-uri), e.g. %s", c.Type, exampleRedirect(c.Type)))
	}
	for _, u := range c.RedirectURIs {
		if err := authorize.CheckRedirectURI(c.Type, u); err != nil {
			return usageError(fmt.Errorf("--redirect-uri %q: %v", u, err))
		}
	}
	for _, u := range c.PostLogoutRedirectURIs {
		if err := authorize.CheckRedirectURI(c.Type, u); err != nil {
			return usageError(fmt.Errorf("--post-logout-redirect-uri %q: %v", u, err))
		}
	}
	if c.BackchannelLogoutURI != "" {
		if err := checkBackchannelURI(c.BackchannelLogoutURI); err != nil {
			return usageError(fmt.Errorf("--backchannel-logout-uri %q: %v", c.BackchannelLogoutURI, err))
		}
	}
	return nil
}

// checkBackchannelURI: OIDC Back-Channel Logout 1.0 §2.2: an absolute http(s) URI, which may have a
// query but no fragment (and, here, no userinfo: credentials do not belong in a registration).
func checkBackchannelURI(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs() || (u.Scheme != "https" && u.Scheme != "http"):
		return errors.New("it must be an absolute http or https URI")
	case u.Host == "":
		return errors.New("it has no host")
	case strings.Contains(raw, "#"):
		return errors.New("it has a fragment")
	case u.User != nil:
		return errors.New("it has userinfo")
	}
	return nil
}

// validateClient checks a client's settings and makes sure a signing key exists for its algorithm.
func validateClient(cmd *cobra.Command, s *server.Server, c *store.Client) error {
	ctx := cmd.Context()
	switch c.AuthMethod {
	case store.AuthSecretBasic, store.AuthSecretPost, store.AuthPrivateKeyJWT, store.AuthNone:
	default:
		return fmt.Errorf("--auth %q: use client_secret_basic, client_secret_post, private_key_jwt or none", c.AuthMethod)
	}
	grants, err := parseGrants("--grant", c.GrantTypes)
	if err != nil {
		return err
	}
	c.GrantTypes = grants
	if c.AuthMethod == store.AuthNone && slices.Contains(c.GrantTypes, "client_credentials") {
		return errors.New("a public client (--auth none) cannot use client_credentials")
	}
	if err := checkSignInURIs(c); err != nil {
		return err
	}
	if c.AccessTokenFormat != store.FormatJWT && c.AccessTokenFormat != store.FormatOpaque {
		return fmt.Errorf("--token-format %q: use jwt or opaque", c.AccessTokenFormat)
	}
	if !keys.ValidAlgorithm(c.AccessTokenAlg) {
		return fmt.Errorf("--alg %q: use ES256, EdDSA or RS256", c.AccessTokenAlg)
	}
	if c.AccessTokenTTL < 0 || c.AccessTokenTTL > s.Config.MaxAccessTTL {
		return fmt.Errorf("--ttl %s: must be between 0 (server default) and the server's --max-access-token-ttl %s", c.AccessTokenTTL, s.Config.MaxAccessTTL)
	}
	for _, a := range c.Audiences {
		if a == c.ID {
			continue
		}
		if _, err := s.Store.GetClient(ctx, a); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("--audience %q: no client has this ID (an audience is the client ID of an API; see `signet client list`)", a)
		} else if err != nil {
			return err
		}
	}
	for _, r := range c.Roles {
		if _, err := s.Store.GetRole(ctx, r); err != nil {
			return fmt.Errorf("--role %q: no such role (see `signet role list`)", r)
		}
	}
	_, err = s.Keys.Ensure(ctx, c.AccessTokenAlg)
	return err
}

func clientListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List clients",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			list, err := s.Store.ListClients(cmd.Context())
			if err != nil {
				return err
			}
			views := make([]clientView, 0, len(list))
			var rows [][]string
			for i := range list {
				c := &list[i]
				views = append(views, viewClient(c, ""))
				rows = append(rows, []string{c.ID, c.Name, c.Type, c.AuthMethod, c.AccessTokenFormat, strings.Join(c.GrantTypes, ","), strings.Join(c.Roles, ",")})
			}
			return output(cmd, views, func(w io.Writer) {
				table(w, "CLIENT ID\tNAME\tTYPE\tAUTH\tTOKENS\tGRANTS\tROLES", rows)
			})
		}),
	}
}

func clientShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show CLIENT_ID",
		Short: "Show a client's settings",
		Args:  cobra.ExactArgs(1),
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			c, err := findClient(cmd.Context(), s, args[0])
			if err != nil {
				return err
			}
			return output(cmd, viewClient(c, ""), func(w io.Writer) {
				ttl := "server default"
				if c.AccessTokenTTL > 0 {
					ttl = c.AccessTokenTTL.String()
				}
				fmt.Fprintf(w, "Client %s (%s)\n  type:          %s\n  auth method:   %s\n  grants:        %s\n  access tokens: %s %s, %s\n",
					c.ID, c.Name, c.Type, c.AuthMethod, listOrNone(c.GrantTypes), c.AccessTokenFormat, c.AccessTokenAlg, ttl)
				fmt.Fprintf(w, "  audiences:     %s\n  scopes:        %s\n  roles:         %s\n  disabled:      %v\n",
					listOrNone(c.Audiences), listOrNone(c.Scopes), listOrNone(c.Roles), c.Disabled)
				if signsIn(c.Type) {
					fmt.Fprintf(w, "  redirect URIs: %s\n  post-logout redirect URIs: %s\n  back-channel logout URI: %s\n  third party (asks consent): %v\n  requires a second factor: %v\n",
						listOrNone(c.RedirectURIs), listOrNone(c.PostLogoutRedirectURIs), orNone(c.BackchannelLogoutURI), c.ThirdParty, c.RequireMFA)
				}
			})
		}),
	}
}

// orNone is s, or "(none)" when it is empty.
func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// flagPair reads a pair of opposite boolean flags (--third-party/--first-party): set reports
// whether either was given, on what it says; both is a usage error.
func flagPair(f *pflag.FlagSet, on, off string) (value, set bool, err error) {
	a, b := f.Changed(on), f.Changed(off)
	switch {
	case a && b:
		return false, false, usageError(fmt.Errorf("use --%s or --%s, not both", on, off))
	case a:
		return f.Lookup(on).Value.String() == "true", true, nil
	case b:
		return f.Lookup(off).Value.String() != "true", true, nil
	}
	return false, false, nil
}

func clientUpdateCmd() *cobra.Command {
	var format, alg, backchannel string
	var ttl time.Duration
	var disable, enable bool
	logoutRedirects := &listEdit{name: "post-logout-redirect-uri", plural: "post-logout redirect URIs"}
	grants := &listEdit{name: "grant", plural: "grants", parse: parseGrants}
	scopes := &listEdit{name: "scope", plural: "scopes"}
	audiences := &listEdit{name: "audience", plural: "audiences"}
	redirects := &listEdit{name: "redirect-uri", plural: "redirect URIs"}
	cmd := &cobra.Command{
		Use:   "update CLIENT_ID",
		Short: "Change a client's grants, audiences, scopes, redirect URIs, sign-in settings, token format or state",
		Long: `Change a client's grants, audiences, scopes, redirect URIs, sign-in settings, token format or
state (audited).

For each list, --add-X and --remove-X change it and keep the rest, while --X REPLACES the whole list:
  signet client update app --add-grant token-exchange       # keeps the grants it has
  signet client update app --grant token-exchange           # now token-exchange only`,
		Args: cobra.ExactArgs(1),
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			c, err := findClient(cmd.Context(), s, args[0])
			if err != nil {
				return err
			}
			f := cmd.Flags()
			owner := fmt.Sprintf("client %q", c.ID)
			if c.GrantTypes, err = grants.apply(f, owner, c.GrantTypes); err != nil {
				return err
			}
			if c.Audiences, err = audiences.apply(f, owner, c.Audiences); err != nil {
				return err
			}
			if c.Scopes, err = scopes.apply(f, owner, c.Scopes); err != nil {
				return err
			}
			if c.RedirectURIs, err = redirects.apply(f, owner, c.RedirectURIs); err != nil {
				return err
			}
			if c.PostLogoutRedirectURIs, err = logoutRedirects.apply(f, owner, c.PostLogoutRedirectURIs); err != nil {
				return err
			}
			if v, set, err := flagPair(f, "third-party", "first-party"); err != nil {
				return err
			} else if set {
				c.ThirdParty = v
			}
			if v, set, err := flagPair(f, "require-mfa", "no-require-mfa"); err != nil {
				return err
			} else if set {
				c.RequireMFA = v
			}
			if f.Changed("backchannel-logout-uri") {
				c.BackchannelLogoutURI = backchannel
			}
			if f.Changed("token-format") {
				c.AccessTokenFormat = format
			}
			if f.Changed("alg") {
				c.AccessTokenAlg = alg
			}
			if f.Changed("ttl") {
				c.AccessTokenTTL = ttl
			}
			if disable && enable {
				return errors.New("use --disable or --enable, not both")
			}
			if disable || enable {
				c.Disabled = disable
			}
			if err := validateClient(cmd, s, c); err != nil {
				return err
			}
			c.UpdatedAt = time.Now()
			if err := recordChange(cmd.Context(), s, audit.TypeClientChanged, c.ID, map[string]any{"action": "updated", "client": viewClient(c, "")}); err != nil {
				return err
			}
			if err := s.Store.UpdateClient(cmd.Context(), c); err != nil {
				return err
			}
			if disable {
				// Enabling it later must not bring back what was issued before.
				if err := s.Sessions.RetirePrincipal(cmd.Context(), store.KindClient, c.ID, operator(), "client "+c.ID+" disabled", s.Config.MaxAccessTTL); err != nil {
					return err
				}
			}
			return output(cmd, viewClient(c, ""), func(w io.Writer) {
				fmt.Fprintf(w, "Updated client %s\n  grants:    %s\n  audiences: %s\n  scopes:    %s\n", c.ID, listOrNone(c.GrantTypes), listOrNone(c.Audiences), listOrNone(c.Scopes))
				if signsIn(c.Type) {
					fmt.Fprintf(w, "  redirect URIs: %s\n  post-logout redirect URIs: %s\n  back-channel logout URI: %s\n  third party: %v, requires a second factor: %v\n",
						listOrNone(c.RedirectURIs), listOrNone(c.PostLogoutRedirectURIs), orNone(c.BackchannelLogoutURI), c.ThirdParty, c.RequireMFA)
				}
			})
		}),
	}
	f := cmd.Flags()
	grants.register(f, "an allowed grant type (short names such as token-exchange work)")
	audiences.register(f, "an allowed audience (an API's client ID)")
	scopes.register(f, "an allowed scope")
	redirects.register(f, "a redirect URI")
	logoutRedirects.register(f, "a post-logout redirect URI")
	f.Bool("third-party", false, "ask each user's consent before the client gets anything")
	f.Bool("first-party", false, "sign users in without asking consent (an application you run)")
	f.Bool("require-mfa", false, "every sign-in to this client needs a second factor")
	f.Bool("no-require-mfa", false, "sign-ins to this client need a second factor only when the user or a role does")
	f.StringVar(&backchannel, "backchannel-logout-uri", "", "https URI that receives a logout_token when a session ends (\"\" removes it)")
	f.StringVar(&format, "token-format", "", "jwt or opaque")
	f.StringVar(&alg, "alg", "", "ES256, EdDSA or RS256")
	f.DurationVar(&ttl, "ttl", 0, "access token lifetime (0: server default)")
	f.BoolVar(&disable, "disable", false, "refuse the client's requests")
	f.BoolVar(&enable, "enable", false, "accept the client's requests again")
	return cmd
}

func clientDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete CLIENT_ID",
		Short: "Delete a client with its keys and role grants",
		Args:  cobra.ExactArgs(1),
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			if err := recordChange(cmd.Context(), s, audit.TypeClientChanged, args[0], map[string]any{"action": "deleted"}); err != nil {
				return err
			}
			if err := s.Store.DeleteClient(cmd.Context(), args[0]); err != nil {
				return explainStoreErr(err, "client "+args[0])
			}
			if err := s.Sessions.RetirePrincipal(cmd.Context(), store.KindClient, args[0], operator(), "client "+args[0]+" deleted", s.Config.MaxAccessTTL); err != nil {
				return err
			}
			return output(cmd, map[string]any{"deleted": args[0]}, func(w io.Writer) { fmt.Fprintf(w, "Deleted client %s\n", args[0]) })
		}),
	}
}

func clientSecretCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "secret", Short: "Manage a client's secret"}
	cmd.AddCommand(&cobra.Command{
		Use:   "reset CLIENT_ID",
		Short: "Replace a client's secret; the new one is printed once and the old one stops working",
		Args:  cobra.ExactArgs(1),
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			c, err := findClient(cmd.Context(), s, args[0])
			if err != nil {
				return err
			}
			if c.AuthMethod != store.AuthSecretBasic && c.AuthMethod != store.AuthSecretPost {
				return fmt.Errorf("client %s authenticates with %s and has no secret", c.ID, c.AuthMethod)
			}
			var secret string
			secret, c.SecretSalt, c.SecretHash = s.Secrets.NewSecret()
			c.UpdatedAt = time.Now()
			if err := recordChange(cmd.Context(), s, audit.TypeClientChanged, c.ID, map[string]any{"action": "secret_reset"}); err != nil {
				return err
			}
			if err := s.Store.UpdateClient(cmd.Context(), c); err != nil {
				return err
			}
			return output(cmd, map[string]string{"client_id": c.ID, "client_secret": secret}, func(w io.Writer) {
				fmt.Fprintf(w, "New secret for %s: %s\n(shown once; store it now)\n", c.ID, secret)
			})
		}),
	})
	return cmd
}

func clientKeyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Manage application key files (private_key_jwt)"}
	var clientID, out, alg, expires, expiresIn string
	var force bool
	create := &cobra.Command{
		Use:   "create --client ID --out app.json",
		Short: "Create an application key file (the private key is written once, mode 0600)",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			c, err := findClient(cmd.Context(), s, clientID)
			if err != nil {
				return err
			}
			if c.AuthMethod != store.AuthPrivateKeyJWT {
				return fmt.Errorf("client %s authenticates with %s; key files are for private_key_jwt clients (signet client create --auth private_key_jwt)", c.ID, c.AuthMethod)
			}
			kf := &keys.KeyFile{Type: keys.TypeApplication, AppID: c.ID, ClientID: c.ID}
			return createKeyFile(cmd, s, store.KindClient, c.ID, kf, alg, expires, expiresIn, out, force)
		}),
	}
	f := create.Flags()
	f.StringVar(&clientID, "client", "", "client ID (required)")
	f.StringVar(&out, "out", "", "where to write the key file (required)")
	f.StringVar(&alg, "alg", keys.RS256, "RS256, ES256 or EdDSA")
	f.StringVar(&expires, "expires", "", "expiry date (YYYY-MM-DD or RFC 3339)")
	f.StringVar(&expiresIn, "expires-in", "", "expiry as a duration from now, e.g. 720h")
	f.BoolVar(&force, "force", false, "overwrite an existing file")
	cmd.AddCommand(create)
	return cmd
}

// keyFileView is the JSON shape printed after a key file is written.
type keyFileView struct {
	KeyID     string    `json:"key_id"`
	UserID    string    `json:"user_id,omitempty"`
	ClientID  string    `json:"client_id,omitempty"`
	Path      string    `json:"path"`
	Algorithm string    `json:"algorithm"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// createKeyFile registers a new key pair for a principal and writes its key file.
func createKeyFile(cmd *cobra.Command, s *server.Server, kind store.PrincipalKind, ownerID string, kf *keys.KeyFile, alg, expires, expiresIn, out string, force bool) error {
	if out == "" {
		return errors.New("--out is required: the private key is shown only in the file")
	}
	now := time.Now()
	exp, err := parseExpiry(expires, expiresIn, now)
	if err != nil {
		return err
	}
	priv, pub, err := keys.GenerateKeyPair(alg)
	if err != nil {
		return err
	}
	kf.KeyID, kf.Key = secrets.NewID(), string(priv)
	data, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return err
	}
	if err := writeKeyFile(out, append(data, '\n'), force); err != nil {
		return err
	}
	pk := &store.PublicKey{ID: kf.KeyID, OwnerKind: kind, OwnerID: ownerID, Algorithm: alg, PublicKeyPEM: pub, ExpiresAt: exp, CreatedAt: now}
	if err := recordChange(cmd.Context(), s, audit.TypePublicKeyChanged, ownerID, map[string]any{"action": "created", "key_id": pk.ID, "owner_kind": kind, "algorithm": alg}); err != nil {
		return err
	}
	if err := s.Store.CreatePublicKey(cmd.Context(), pk); err != nil {
		return err
	}
	v := keyFileView{KeyID: kf.KeyID, Path: out, Algorithm: alg, ExpiresAt: exp}
	if kind == store.KindServiceAccount {
		v.UserID = ownerID
	} else {
		v.ClientID = ownerID
	}
	return output(cmd, v, func(w io.Writer) {
		fmt.Fprintf(w, "Wrote key file %s (keyId %s, %s", out, kf.KeyID, alg)
		if !exp.IsZero() {
			fmt.Fprintf(w, ", expires %s", formatTime(exp))
		}
		fmt.Fprintln(w, "). Keep it secret: Signet stores only the public key.")
	})
}

package oauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/signet-id/signet/internal/directory"
	"github.com/signet-id/signet/internal/keys"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/tokens"
	"github.com/signet-id/signet/jwtverify"
)

// Client authentication methods as reported on a Caller.
const (
	MethodSecretBasic   = store.AuthSecretBasic
	MethodSecretPost    = store.AuthSecretPost
	MethodPrivateKeyJWT = store.AuthPrivateKeyJWT
	MethodBearer        = "bearer"
	MethodNone          = store.AuthNone
)

// AssertionType is the client_assertion_type of RFC 7523 §2.2.
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Caller is an authenticated client or service account.
type Caller struct {
	Kind    store.PrincipalKind // store.KindClient or store.KindServiceAccount
	ID      string              // client_id or service account ID
	Name    string
	Client  *store.Client         // set when Kind is client
	Account *store.ServiceAccount // set when Kind is serviceaccount
	Roles   []string
	Method  string
}

// describe names the caller in messages.
func (c *Caller) describe() string {
	if c.Kind == store.KindServiceAccount {
		return fmt.Sprintf("service account %q", c.Name)
	}
	return fmt.Sprintf("client %q", c.ID)
}

// Authenticator authenticates callers of the token, introspection and revocation endpoints: one
// place for every method of SPEC §5.
type Authenticator struct {
	Issuer  string
	Dir     *directory.Directory
	Secrets *secrets.Keys
	Replay  interface {
		UseAssertionID(ctx context.Context, iss, jti string, exp time.Time) error
	}
	Tokens       *tokens.Service
	MaxAssertion time.Duration // longest accepted assertion lifetime (exp - iat)
	Leeway       time.Duration
	Now          func() time.Time
	Log          *slog.Logger // operators' reasons for refusals the caller sees only in general terms
}

// AuthOptions say which methods an endpoint accepts.
type AuthOptions struct {
	AllowNone   bool // public clients sending only client_id (token endpoint)
	AllowBearer bool // a service account's Bearer access token (introspection)
	Optional    bool // no credentials at all is fine (JWT bearer grant): returns nil, nil
}

// Authenticate identifies the caller or returns an invalid_client error that says what to fix.
func (a *Authenticator) Authenticate(r *http.Request, f Form, opt AuthOptions) (*Caller, error) {
	ctx := r.Context()
	authz := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(authz, " ")
	scheme = strings.ToLower(scheme)
	formID, formSecret := f.Get("client_id"), f.Get("client_secret")
	assertion, assertionType := f.Get("client_assertion"), f.Get("client_assertion_type")

	var used []string
	if authz != "" {
		used = append(used, "the Authorization header")
	}
	if formSecret != "" {
		used = append(used, "client_secret")
	}
	if assertion != "" || assertionType != "" {
		used = append(used, "client_assertion")
	}
	if len(used) > 1 {
		return nil, InvalidRequest("use one client authentication method per request; this request sent %s", strings.Join(used, " and "))
	}

	switch {
	case authz != "" && scheme == "basic":
		id, secret, err := parseBasic(cred)
		if err != nil {
			e := InvalidClient("malformed HTTP Basic credentials: send base64(urlencode(client_id):urlencode(client_secret))")
			e.Challenge = basicChallenge
			return nil, e
		}
		if formID != "" && formID != id {
			return nil, InvalidRequest("client_id %q in the body differs from %q in the Authorization header", formID, id)
		}
		c, err := a.bySecret(ctx, id, secret, MethodSecretBasic)
		if err != nil {
			if oe, ok := err.(*Error); ok && oe.Code == CodeInvalidClient {
				oe.Challenge = basicChallenge
			}
			return nil, err
		}
		return c, nil
	case authz != "" && scheme == "bearer":
		if !opt.AllowBearer {
			return nil, InvalidClient("a Bearer token cannot authenticate a client here; use the client's secret or a client_assertion")
		}
		return a.byBearer(ctx, strings.TrimSpace(cred))
	case authz != "":
		return nil, InvalidClient("unsupported Authorization scheme %q; use Basic (client secret) or send a client_assertion", firstWord(authz))
	case formSecret != "":
		if formID == "" {
			return nil, InvalidRequest("client_secret was sent without client_id")
		}
		return a.bySecret(ctx, formID, formSecret, MethodSecretPost)
	case assertion != "" || assertionType != "":
		if assertionType != AssertionType {
			return nil, InvalidRequest("client_assertion_type must be %q", AssertionType)
		}
		if assertion == "" {
			return nil, InvalidRequest("client_assertion_type was sent without client_assertion")
		}
		return a.byAssertion(ctx, r, assertion, formID)
	case formID != "":
		return a.public(ctx, formID, opt)
	case opt.Optional:
		return nil, nil
	default:
		e := InvalidClient("no client authentication: send HTTP Basic with client_id and client_secret, client_secret_post, a client_assertion (private_key_jwt)%s", bearerHint(opt))
		e.Challenge = basicChallenge
		return nil, e
	}
}

const basicChallenge = `Basic realm="signet"`

func bearerHint(opt AuthOptions) string {
	if opt.AllowBearer {
		return ", or a Bearer token of a service account with the signet:introspect permission"
	}
	return ""
}

func firstWord(s string) string {
	w, _, _ := strings.Cut(s, " ")
	if len(w) > 20 {
		w = w[:20]
	}
	return w
}

// parseBasic decodes RFC 6749 §2.3.1 credentials: base64 of urlencoded id ":" urlencoded secret.
func parseBasic(cred string) (id, secret string, err error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "", "", err
	}
	rawID, rawSecret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", errors.New("no colon")
	}
	if id, err = url.QueryUnescape(rawID); err != nil {
		return "", "", err
	}
	if secret, err = url.QueryUnescape(rawSecret); err != nil {
		return "", "", err
	}
	if id == "" {
		return "", "", errors.New("empty client_id")
	}
	return id, secret, nil
}

// principal finds a client or, failing that, a service account by ID.
func (a *Authenticator) principal(ctx context.Context, id string) (*Caller, error) {
	c, err := a.Dir.Client(ctx, id)
	if err == nil {
		return &Caller{Kind: store.KindClient, ID: c.ID, Name: c.Name, Client: c, Roles: c.Roles}, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, ServerError(err)
	}
	sa, err := a.Dir.ServiceAccount(ctx, id)
	if err == nil {
		return &Caller{Kind: store.KindServiceAccount, ID: sa.ID, Name: sa.Name, Account: sa, Roles: sa.Roles}, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, ServerError(err)
	}
	return nil, nil
}

// dummySalt keeps the unknown-client path as slow as the known one.
var dummySalt = []byte("signet-dummy-salt")

func (a *Authenticator) bySecret(ctx context.Context, id, secret, method string) (*Caller, error) {
	c, err := a.principal(ctx, id)
	if err != nil {
		return nil, err
	}
	if c == nil {
		a.Secrets.VerifySecret(dummySalt, dummySalt, secret)
		return nil, InvalidClient("unknown client %q: no client or service account has this ID", id)
	}
	if err := a.usable(c); err != nil {
		return nil, err
	}
	salt, hash := c.secret()
	if len(hash) == 0 {
		switch {
		case c.Client != nil && c.Client.AuthMethod == store.AuthPrivateKeyJWT:
			return nil, InvalidClient("client %q has no secret; it authenticates with private_key_jwt: send a client_assertion signed with its key file", id)
		case c.Client != nil && c.Client.AuthMethod == store.AuthNone:
			return nil, InvalidClient("client %q is a public client and has no secret; send only client_id (with PKCE) at the token endpoint", id)
		case c.Account != nil:
			return nil, InvalidClient("service account %q has no secret; it authenticates with its key file (private_key_jwt or the JWT bearer grant)", c.Name)
		}
	}
	if !a.Secrets.VerifySecret(salt, hash, secret) {
		return nil, InvalidClient("the client secret for %q is wrong; use the secret printed when it was created, or reset it", id)
	}
	c.Method = method
	return c, nil
}

func (c *Caller) secret() (salt, hash []byte) {
	if c.Client != nil {
		return c.Client.SecretSalt, c.Client.SecretHash
	}
	return c.Account.SecretSalt, c.Account.SecretHash
}

// usable refuses disabled principals.
func (a *Authenticator) usable(c *Caller) error {
	if c.Client != nil && c.Client.Disabled {
		return InvalidClient("client %q is disabled", c.ID)
	}
	if c.Account != nil && c.Account.Disabled {
		return InvalidClient("service account %q is disabled", c.Name)
	}
	return nil
}

func (a *Authenticator) public(ctx context.Context, id string, opt AuthOptions) (*Caller, error) {
	c, err := a.principal(ctx, id)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, InvalidClient("unknown client %q: no client or service account has this ID", id)
	}
	if err := a.usable(c); err != nil {
		return nil, err
	}
	if c.Client == nil || c.Client.AuthMethod != store.AuthNone {
		method := "its secret (HTTP Basic or client_secret_post)"
		if (c.Client != nil && c.Client.AuthMethod == store.AuthPrivateKeyJWT) || c.Account != nil {
			method = "a client_assertion signed with its key file"
		}
		return nil, InvalidClient("%s is confidential and sent only its ID; authenticate with %s", c.describe(), method)
	}
	if !opt.AllowNone {
		return nil, InvalidClient("client %q is a public client; this endpoint needs a confidential client's credentials", id)
	}
	c.Method = MethodNone
	return c, nil
}

// byBearer authenticates a service account by its access token. Every token that cannot do so
// (malformed, unknown, expired, revoked, a user's or a client's, a disabled or deleted account's)
// gets one description: the answer must not tell an attacker holding a token what state it is in.
// The operator's log says which.
func (a *Authenticator) byBearer(ctx context.Context, raw string) (*Caller, error) {
	refuse := func(why string) (*Caller, error) {
		if a.Log != nil {
			a.Log.Info("Bearer authentication refused", "reason", why)
		}
		return nil, InvalidToken("the Bearer token is not an active access token of a service account issued by %s; get a new access token for a service account with the signet:introspect permission", a.Issuer)
	}
	at, inactive, err := a.Tokens.Resolve(ctx, raw)
	if err != nil {
		return nil, ServerError(err)
	}
	if inactive != nil {
		return refuse(inactive.String())
	}
	if at.SubjectKind != store.KindServiceAccount {
		return refuse("token " + at.ID + " belongs to " + kindName(at.SubjectKind) + " " + at.Subject)
	}
	if at.Act != nil {
		return refuse("token " + at.ID + " was obtained by token exchange")
	}
	sa, err := a.Dir.ServiceAccount(ctx, at.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return refuse("service account " + at.Subject + " no longer exists")
	}
	if err != nil {
		return nil, ServerError(err)
	}
	c := &Caller{Kind: store.KindServiceAccount, ID: sa.ID, Name: sa.Name, Account: sa, Roles: sa.Roles, Method: MethodBearer}
	if err := a.usable(c); err != nil {
		return refuse("service account " + sa.ID + " is disabled")
	}
	return c, nil
}

func kindName(k store.PrincipalKind) string {
	switch k {
	case store.KindUser:
		return "user"
	case store.KindServiceAccount:
		return "service account"
	case store.KindClient:
		return "client"
	}
	return "principal"
}

// byAssertion authenticates a private_key_jwt client assertion (RFC 7523 §2.2, §3).
func (a *Authenticator) byAssertion(ctx context.Context, r *http.Request, assertion, formID string) (*Caller, error) {
	_, owner, err := a.VerifyAssertion(ctx, assertion, clientAssertion, a.audiences(r))
	if err != nil {
		return nil, err
	}
	if formID != "" && formID != owner.ID {
		return nil, InvalidRequest("client_id %q differs from the client_assertion's subject %q", formID, owner.ID)
	}
	if owner.Client != nil && owner.Client.AuthMethod != store.AuthPrivateKeyJWT {
		return nil, InvalidClient("client %q authenticates with %s, not private_key_jwt; send its secret or change its auth method", owner.ID, owner.Client.AuthMethod)
	}
	owner.Method = MethodPrivateKeyJWT
	return owner, nil
}

// audiences are the values accepted in an assertion's aud: the issuer, the token endpoint and the
// endpoint being called (RFC 7523 §3).
func (a *Authenticator) audiences(r *http.Request) []string {
	aud := []string{a.Issuer, a.Issuer + TokenPath}
	if r != nil && r.URL.Path != TokenPath {
		aud = append(aud, a.Issuer+r.URL.Path)
	}
	return aud
}

// assertionUse says where an assertion came from, for messages and error codes.
type assertionUse struct {
	param string                                  // client_assertion or assertion
	fail  func(format string, args ...any) *Error // invalid_client or invalid_grant
}

var (
	clientAssertion = assertionUse{param: "client_assertion", fail: InvalidClient}
	grantAssertion  = assertionUse{param: "assertion", fail: InvalidGrant}
)

// VerifyAssertion checks a JWT signed with a registered key (a key file): signature, kid, key
// validity, iss = sub = the key's owner, aud, lifetime and jti replay. It returns the owner.
func (a *Authenticator) VerifyAssertion(ctx context.Context, raw string, use assertionUse, audiences []string) (*jwtverify.Token, *Caller, error) {
	var owner *Caller
	keyFunc := func(ctx context.Context, kid string) (*jwtverify.Key, error) {
		pk, err := a.Dir.PublicKey(ctx, kid)
		if errors.Is(err, store.ErrNotFound) {
			return nil, jwtverify.ErrUnknownKey
		}
		if err != nil {
			return nil, err
		}
		c, err := a.principal(ctx, pk.OwnerID)
		if err != nil {
			return nil, err
		}
		if c == nil {
			return nil, jwtverify.ErrUnknownKey
		}
		pub, alg, err := keys.ParsePublicKeyPEM(pk.PublicKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("registered key %s: %w", kid, err)
		}
		owner = c
		return &jwtverify.Key{ID: pk.ID, Public: pub, Algorithm: alg, ExpiresAt: pk.ExpiresAt, RevokedAt: pk.RevokedAt, Owner: c.describe()}, nil
	}
	now := a.Now()
	tok, err := jwtverify.Verify(ctx, raw, keyFunc, jwtverify.Options{
		Audiences: audiences, Now: a.Now, Leeway: a.Leeway, MaxLifetime: a.MaxAssertion,
		RequireExp: true, RequireIAT: true, RequireJTI: true,
	})
	if err != nil {
		var ve *jwtverify.Error
		if !errors.As(err, &ve) {
			var oe *Error
			if errors.As(err, &oe) {
				return nil, nil, oe
			}
			return nil, nil, ServerError(err)
		}
		ownerDesc := ""
		if owner != nil {
			ownerDesc = owner.describe()
		}
		return nil, nil, a.assertionError(use, ve, now, ownerDesc)
	}
	if err := a.usable(owner); err != nil {
		return nil, nil, err
	}
	if tok.Claims.Issuer != owner.ID || tok.Claims.Subject != owner.ID {
		return nil, nil, use.fail("%s iss is %q and sub is %q; key %q belongs to %s, so both must be %q (the key file's %s)",
			use.param, tok.Claims.Issuer, tok.Claims.Subject, tok.Key.ID, owner.describe(), owner.ID, idField(owner))
	}
	if err := a.Replay.UseAssertionID(ctx, owner.ID, tok.Claims.ID, tok.Claims.ExpiresAt.Add(a.Leeway)); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, nil, use.fail("%s jti %q was already used; make a new assertion with a fresh jti for every request", use.param, tok.Claims.ID)
		}
		return nil, nil, ServerError(err)
	}
	return tok, owner, nil
}

func idField(c *Caller) string {
	if c.Kind == store.KindServiceAccount {
		return "userId"
	}
	return "clientId"
}

// assertionError turns a validation failure into a description that names cause and fix.
func (a *Authenticator) assertionError(use assertionUse, ve *jwtverify.Error, now time.Time, owner string) *Error {
	p := use.param
	kid := ""
	if ve.Token != nil {
		kid = ve.Token.Header.KeyID
	}
	serverTime := now.UTC().Format(time.RFC3339)
	switch ve.Reason {
	case jwtverify.ReasonMalformed:
		return use.fail("%s is not a well-formed signed JWT (compact JWS with JSON header and claims)", p)
	case jwtverify.ReasonAlgorithm:
		return use.fail("%s alg %q is not accepted; sign with the key file's private key using %s (unsigned and HMAC assertions are refused)", p, ve.Got, ve.Expected)
	case jwtverify.ReasonNoKeyID:
		return use.fail("%s has no kid header; set kid to the keyId from the key file", p)
	case jwtverify.ReasonUnknownKey:
		return use.fail("%s kid %q is not a registered key; check the key file's keyId or create a key with `signet serviceaccount key create`", p, kid)
	case jwtverify.ReasonKeyRevoked:
		return use.fail("key %q of %s was revoked at %s; create a new key file", kid, owner, ve.Got)
	case jwtverify.ReasonKeyExpired:
		return use.fail("key %q of %s expired %s; create a new key file", kid, owner, ve.Got)
	case jwtverify.ReasonSignature:
		return use.fail("%s signature does not verify with key %q of %s; sign with the private key from that key file", p, kid, owner)
	case jwtverify.ReasonAudience:
		return use.fail("%s audience is %s; expected the issuer %q (the token endpoint %q is accepted too)", p, ve.Got, a.Issuer, a.Issuer+TokenPath)
	case jwtverify.ReasonExpired:
		return use.fail("%s expired at %s (server time %s); make a fresh assertion for every request", p, ve.Got, serverTime)
	case jwtverify.ReasonNotYetValid:
		return use.fail("%s is not valid before %s (server time %s); check the client's clock", p, ve.Got, serverTime)
	case jwtverify.ReasonIssuedInFuture:
		return use.fail("%s iat %s is in the future (server time %s); check the client's clock", p, ve.Got, serverTime)
	case jwtverify.ReasonLifetime:
		return use.fail("%s lifetime (exp - iat) is %s; at most %s is accepted", p, ve.Got, ve.Expected)
	case jwtverify.ReasonMissingClaim:
		return use.fail("%s lacks the %q claim", p, ve.Expected)
	default:
		return use.fail("%s is not acceptable: %s", p, ve.Error())
	}
}

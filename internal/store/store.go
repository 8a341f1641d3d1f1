// Package store defines Signet's persistence contract: the records Signet keeps and the one Store
// interface every backend implements. Backends live in sub-packages (sqlite, postgres) and all pass
// the conformance suite in storetest. This package holds no SQL and no protocol logic.
package store

import (
	"context"
	"errors"
	"time"
)

// Typed errors every backend returns (wrapped is fine; callers use errors.Is).
var (
	// ErrNotFound means the record does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict means a uniqueness rule was violated (duplicate ID, name, used assertion jti).
	ErrConflict = errors.New("store: conflict")
)

// PrincipalKind names what a principal (a token's subject or an authenticated caller) is.
type PrincipalKind string

const (
	KindUser           PrincipalKind = "user"
	KindServiceAccount PrincipalKind = "serviceaccount"
	KindClient         PrincipalKind = "client"
)

// User is a person who signs in.
type User struct {
	ID           string
	Username     string // unique
	Email        string // unique when not empty
	DisplayName  string
	PasswordHash string   // argon2id PHC string; empty means no password sign-in
	Roles        []string // filled from role grants
	Locked       bool
	// PasswordChangeRequired makes the next sign-in ask for a new password before anything else
	// (the bootstrap admin, a password set by an administrator).
	PasswordChangeRequired bool
	// MFARequired makes every sign-in of this user need a second factor (enrolled at first sign-in
	// when there is none yet).
	MFARequired bool
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// ServiceAccount is a machine user (ZITADEL's "machine user"). It authenticates with key files
// (private_key_jwt, JWT bearer grant) or, when it has one, a secret.
type ServiceAccount struct {
	ID          string
	Name        string // unique login name
	Description string
	Roles       []string // filled from role grants
	GrantTypes  []string // grant_type values it may use at the token endpoint, like a client's
	SecretSalt  []byte   // empty when the account has no secret
	SecretHash  []byte
	Disabled    bool
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Client types.
const (
	ClientWeb    = "web"
	ClientSPA    = "spa"
	ClientNative = "native"
	ClientAPI    = "api"
)

// Client authentication methods (RFC 7591 names).
const (
	AuthSecretBasic   = "client_secret_basic"
	AuthSecretPost    = "client_secret_post"
	AuthPrivateKeyJWT = "private_key_jwt"
	AuthNone          = "none"
)

// Access token formats.
const (
	FormatJWT    = "jwt"
	FormatOpaque = "opaque"
)

// Client is an OAuth client (an application).
type Client struct {
	ID                string // the client_id
	Name              string
	Type              string // ClientWeb, ClientSPA, ClientNative, ClientAPI
	AuthMethod        string // AuthSecretBasic (also accepts post), AuthSecretPost, AuthPrivateKeyJWT, AuthNone
	SecretSalt        []byte // empty unless AuthMethod uses a secret
	SecretHash        []byte
	RedirectURIs      []string
	GrantTypes        []string // allowed grant_type values
	Scopes            []string // scopes the client may request; empty means any known scope
	Audiences         []string // audiences the client may request tokens for, besides itself
	AccessTokenFormat string   // FormatJWT or FormatOpaque
	AccessTokenAlg    string   // ES256, EdDSA or RS256 (JWT format only)
	AccessTokenTTL    time.Duration
	RefreshTokenTTL   time.Duration
	Roles             []string // filled from role grants
	Disabled          bool
	// ThirdParty clients ask the user's consent before they get anything (first-party ones do not).
	ThirdParty bool
	// PostLogoutRedirectURIs are where end_session may send the browser after signing out.
	PostLogoutRedirectURIs []string
	// BackchannelLogoutURI receives a signed logout_token when a session the client got tokens from
	// ends (OIDC Back-Channel Logout 1.0); "" for none.
	BackchannelLogoutURI string
	// RequireMFA makes a second factor necessary to sign in to this client.
	RequireMFA bool
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// PublicKey is a key registered for a service account or client (the public half of a key file).
type PublicKey struct {
	ID           string // the JWT "kid" and the key file's keyId
	OwnerKind    PrincipalKind
	OwnerID      string
	Algorithm    string    // RS256, ES256 or EdDSA
	PublicKeyPEM []byte    // PKIX "PUBLIC KEY" PEM
	ExpiresAt    time.Time // zero: never
	RevokedAt    time.Time // zero: not revoked
	CreatedAt    time.Time
}

// Signing key states. A rotation promotes next to active and active to retired in one step.
const (
	SigningNext    = "next"
	SigningActive  = "active"
	SigningRetired = "retired"
)

// SigningKey is one of the issuer's own keys. The private half is sealed with the master key.
type SigningKey struct {
	ID          string // kid
	Algorithm   string // ES256, EdDSA, RS256
	State       string // SigningNext, SigningActive, SigningRetired
	PrivateKey  []byte // sealed PKCS#8 DER; never stored in the clear
	PublicJWK   []byte // public JWK JSON, published in JWKS
	CreatedAt   time.Time
	ActivatedAt time.Time // zero until active
	RetiredAt   time.Time // zero until retired; retired keys are published until they can verify nothing
}

// Token kinds for stored (opaque) tokens.
const (
	TokenAccess  = "access_token"
	TokenRefresh = "refresh_token"
)

// Token is an issued opaque token. Only an HMAC of the raw value is stored.
type Token struct {
	Hash        []byte // HMAC-SHA256 of the raw token; primary key
	ID          string // public identifier (the jti), used by explain, revoke and audit
	Kind        string // TokenAccess or TokenRefresh
	ClientID    string
	SubjectKind PrincipalKind
	Subject     string
	Scope       []string
	Audience    []string
	IssuedAt    time.Time
	ExpiresAt   time.Time
	RevokedAt   time.Time // zero: not revoked
	UsedAt      time.Time // refresh tokens: when it was exchanged for its successor; zero: unused
	GrantID     string    // chain of tokens sharing an origin
	SessionID   string    // browser or exchange session, if any
	Claims      []byte    // extra claims as a JSON object (act, may_act, ...); may be nil
}

// Revocation kinds. Every issued token is checked against the revocation set at introspection.
const (
	RevokeTokenID = "jti"     // one token, by ID
	RevokeGrant   = "grant"   // every token of a grant
	RevokeSession = "session" // every token of a session
	RevokeSubject = "subject" // every token about a subject (by ID) issued at or before At
	RevokeClient  = "client"  // every token issued to a client at or before At
	// RevokeExchangeKind ends every token of an exchange kind ("impersonation") issued at or before
	// At: the kill switch.
	RevokeExchangeKind = "exchange_kind"
	// Ending every exchange session of an actor, a subject or a requesting client (by ID) reaches
	// every token of the sessions opened at or before At, and everything derived from them.
	RevokeSessionsOfActor   = "sessions_of_actor"
	RevokeSessionsOfSubject = "sessions_of_subject"
	RevokeSessionsOfClient  = "sessions_of_client"
)

// Revocation makes matching tokens inactive. Entries are kept until ExpiresAt, when no token they
// could match is still valid.
type Revocation struct {
	Kind      string
	Value     string
	At        time.Time
	ExpiresAt time.Time
	Reason    string // for operators: explain, logs
}

// Change kinds recorded by the store whenever a row that a cache may hold changes.
const (
	ChangeRevocation     = "revocation"     // Key: "<kind>:<value>"
	ChangeClient         = "client"         // Key: client ID
	ChangeServiceAccount = "serviceaccount" // Key: service account ID
	ChangeUser           = "user"           // Key: user ID
	ChangePublicKey      = "publickey"      // Key: key ID
	ChangeSigningKey     = "signingkey"     // Key: key ID
	ChangeRole           = "role"           // Key: role name, or "<kind>:<id>" for a grant change
	ChangeExchangeRule   = "exchange_rule"  // Key: rule name
	ChangeSetting        = "setting"        // Key: setting name
	// ChangeResync is not stored: the change feed delivers it now and then so that every cache
	// drops everything it holds (a safety net under the feed's own guarantees).
	ChangeResync = "resync"
)

// Change is one entry of the change feed that keeps every replica's caches honest.
type Change struct {
	Seq  int64
	Kind string
	Key  string
	At   time.Time
}

// Role is a named set of permissions.
type Role struct {
	Name        string
	Description string
	Permissions []string
	BuiltIn     bool
	// RequireMFA makes a second factor necessary for every user holding the role.
	RequireMFA bool
}

// AuditEvent is one entry of the append-only, hash-chained audit log (SPEC §8).
type AuditEvent struct {
	Seq int64 // assigned by AppendAudit: unique and increasing in the order events were written; it locates an event
	// Chain and Position place the event in its hash chain: each writer (a replica, a host's CLI) appends to
	// its own chain, numbered 1, 2, 3, … without gaps. SQLite has one chain, "", where Position == Seq.
	Chain    string
	Position int64
	At       time.Time
	Type     string
	Actor    string
	Subject  string
	Client   string
	Details  []byte // a JSON object; nil means {}
	PrevHash []byte // assigned by AppendAudit: the hash of the event before it in its chain
	Hash     []byte // assigned by AppendAudit: ChainHash(audit key, PrevHash, event)
}

// AuditChain is one hash chain of the audit log as its registry records it: the head its writer
// last committed. Events of a chain the registry lacks are reported with Registered false.
type AuditChain struct {
	ID         string
	Position   int64  // the head's position (0: no events yet)
	Hash       []byte // the head's hash
	OpenedAt   time.Time
	UpdatedAt  time.Time
	Registered bool
}

// AuditFilter selects audit events; zero fields match everything.
type AuditFilter struct {
	Actor, Subject, Type string
	Since                time.Time
	AfterSeq             int64
	// InChain, when set, selects the events of one chain after a position, in chain order.
	InChain *ChainPosition
	Limit   int // 0: no limit
}

// ChainPosition is a place in one audit chain.
type ChainPosition struct {
	Chain    string
	Position int64
}

// ExchangeRule is a token-exchange policy rule, stored as JSON (its shape belongs to the exchange
// package).
type ExchangeRule struct {
	Name      string
	Body      []byte
	UpdatedAt time.Time
}

// ExchangeSession groups every token derived from one delegation or impersonation.
type ExchangeSession struct {
	ID        string
	Kind      string // impersonation or delegation
	Actor     string
	Subject   string
	Client    string
	Rule      string
	Reason    string
	CreatedAt time.Time
	ExpiresAt time.Time
	EndedAt   time.Time // zero: not ended
	EndedBy   string
}

// SessionSelector names the exchange sessions of one actor, subject or requesting client, or of one
// kind (impersonation: the kill switch); exactly one field set.
type SessionSelector struct {
	Actor, Subject, Client, Kind string
}

// Store is Signet's persistence. Every method is safe for concurrent use. Methods that change a
// record a cache may hold also append a Change in the same transaction.
type Store interface {
	SignInStore

	// Users.
	CreateUser(ctx context.Context, u *User) error // ErrConflict on duplicate ID, username or email
	GetUser(ctx context.Context, id string) (*User, error)
	GetUserByUsername(ctx context.Context, username string) (*User, error)
	ListUsers(ctx context.Context) ([]User, error)
	UpdateUser(ctx context.Context, u *User) error // all fields but ID, CreatedAt and Roles
	// DeleteUser removes a user with their role grants, consents, TOTP factor, recovery codes and
	// failed-sign-in count, and ends their active browser sessions (ended by "deleted"), in one
	// transaction; ErrNotFound when there is no such user. Revoking what the sessions issued is the
	// caller's (it knows the token lifetimes).
	DeleteUser(ctx context.Context, id string) error

	// Service accounts.
	CreateServiceAccount(ctx context.Context, sa *ServiceAccount) error
	GetServiceAccount(ctx context.Context, id string) (*ServiceAccount, error)
	GetServiceAccountByName(ctx context.Context, name string) (*ServiceAccount, error)
	ListServiceAccounts(ctx context.Context) ([]ServiceAccount, error)
	UpdateServiceAccount(ctx context.Context, sa *ServiceAccount) error
	DeleteServiceAccount(ctx context.Context, id string) error // also deletes its keys and role grants

	// Clients.
	CreateClient(ctx context.Context, c *Client) error
	GetClient(ctx context.Context, id string) (*Client, error)
	ListClients(ctx context.Context) ([]Client, error)
	UpdateClient(ctx context.Context, c *Client) error
	DeleteClient(ctx context.Context, id string) error // also deletes its keys and role grants

	// Roles and grants. Built-in roles are created by the migrations.
	ListRoles(ctx context.Context) ([]Role, error)
	GetRole(ctx context.Context, name string) (*Role, error)
	PutRole(ctx context.Context, r *Role) error    // create or replace
	CreateRole(ctx context.Context, r *Role) error // ErrConflict when a role has the name
	// DeleteRole removes a role nobody holds: ErrNotFound when there is none, ErrConflict (saying
	// why) for a built-in role or one still granted to a user, service account or client.
	DeleteRole(ctx context.Context, name string) error
	GrantRole(ctx context.Context, kind PrincipalKind, id, role string) error  // idempotent; ErrNotFound for unknown role or principal
	RevokeRole(ctx context.Context, kind PrincipalKind, id, role string) error // ErrNotFound when not granted

	// Registered public keys (key files).
	CreatePublicKey(ctx context.Context, k *PublicKey) error
	GetPublicKey(ctx context.Context, id string) (*PublicKey, error)
	ListPublicKeys(ctx context.Context, kind PrincipalKind, ownerID string) ([]PublicKey, error)
	RevokePublicKey(ctx context.Context, id string, at time.Time) error

	// Issuer signing keys.
	CreateSigningKey(ctx context.Context, k *SigningKey) error // ErrConflict for a second active (or next) key of one algorithm
	ListSigningKeys(ctx context.Context) ([]SigningKey, error) // oldest first
	// RotateSigningKey retires the active key of alg, promotes the next key of alg to active and
	// stores newNext as the next key, in one transaction. With no next key, newNext becomes active
	// directly and no next key remains.
	RotateSigningKey(ctx context.Context, alg string, newNext *SigningKey, now time.Time) error
	// DeleteSigningKeys removes retired keys retired before the given time.
	DeleteSigningKeys(ctx context.Context, retiredBefore time.Time) (int, error)

	// Opaque tokens.
	CreateToken(ctx context.Context, t *Token) error // batched with concurrent writers (group commit)
	GetToken(ctx context.Context, hash []byte) (*Token, error)
	GetTokenByID(ctx context.Context, id string) (*Token, error)
	// RotateRefreshToken marks the unused, unrevoked refresh token with hash used at `at` and stores
	// next, in one group-committed transaction with the audit event when one is given (appended like
	// AppendAudit): all are durable, or none. ErrConflict when it was already used or revoked
	// (concurrent callers: exactly one wins), ErrNotFound when no refresh token has that hash.
	RotateRefreshToken(ctx context.Context, hash []byte, next *Token, at time.Time, event *AuditEvent) error

	// Revocations. AddRevocation also marks matching stored tokens revoked: any token by ID (kind
	// jti); refresh tokens by grant, and for kinds subject and client those issued at or before At.
	// Stored refresh tokens can outlive the revocation entry, so the mark is what keeps them revoked.
	AddRevocation(ctx context.Context, r *Revocation) error
	ListRevocations(ctx context.Context, now time.Time) ([]Revocation, error) // entries not yet expired

	// UseAssertionID records a client assertion's (issuer, jti) until exp; ErrConflict if seen.
	UseAssertionID(ctx context.Context, issuer, jti string, exp time.Time) error

	// Audit log. AppendAudit chains events with the audit key the store was opened with (it fails
	// without one) and stores them in order, group-committed with concurrent callers; it returns
	// only when the events are durable.
	AppendAudit(ctx context.Context, events ...*AuditEvent) error
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error) // oldest first (by Seq; by Position with InChain)
	// AuditChains lists the registered chains by ID; with unregistered also chains that hold events
	// but no registration (only tampering makes one: verification asks, reading the whole log).
	AuditChains(ctx context.Context, unregistered bool) ([]AuditChain, error)

	// Token-exchange rules and sessions.
	ListExchangeRules(ctx context.Context) ([]ExchangeRule, error)
	PutExchangeRule(ctx context.Context, r *ExchangeRule) error // create or replace
	DeleteExchangeRule(ctx context.Context, name string) error
	// OpenExchangeSession appends the audit event and creates the session in one group-committed
	// transaction: both are durable, or neither.
	OpenExchangeSession(ctx context.Context, s *ExchangeSession, event *AuditEvent) error
	GetExchangeSession(ctx context.Context, id string) (*ExchangeSession, error)
	ListExchangeSessions(ctx context.Context, activeAt time.Time) ([]ExchangeSession, error) // all when activeAt is zero; else not ended and not expired at activeAt
	EndExchangeSession(ctx context.Context, id, by string, at time.Time) error
	// EndExchangeSessions ends, in one statement, every session of the selector's actor, subject or
	// client that is neither ended nor expired at `at`, and returns how many it ended.
	EndExchangeSessions(ctx context.Context, sel SessionSelector, by string, at time.Time) (int, error)

	// Change feed.
	Changes(ctx context.Context, afterSeq int64, limit int) ([]Change, error)
	LastChangeSeq(ctx context.Context) (int64, error)

	// Settings: small named values (bootstrap markers, master key check).
	GetSetting(ctx context.Context, name string) (string, error) // ErrNotFound when unset
	PutSetting(ctx context.Context, name, value string) error
	CreateSetting(ctx context.Context, name, value string) error // ErrConflict when it exists: the first writer wins

	// Prune deletes expired tokens, assertion IDs, revocations and old changes; returns rows removed.
	Prune(ctx context.Context, now time.Time) (int, error)
	Ping(ctx context.Context) error
	Close() error
}

// ChangeNotifier is implemented by backends that push change notifications (PostgreSQL
// LISTEN/NOTIFY); others are polled. WatchChanges blocks until ctx is done, calling wake on every
// notification and once after (re)connecting.
type ChangeNotifier interface {
	WatchChanges(ctx context.Context, wake func()) error
}

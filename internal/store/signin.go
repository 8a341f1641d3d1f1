package store

import (
	"context"
	"time"
)

// Interactive sign-in (SPEC §10): pending authorization requests, browser sessions, authorization
// codes, consents, second factors and failed-sign-in counters. Secrets are never stored as given:
// session cookies, codes and recovery codes by keyed hash, TOTP secrets sealed with the master key.

// LoginRequest is an authorization request waiting for its user to sign in (and consent). It is
// bound to the browser that started it: only a browser presenting the cookie whose keyed hash is
// BrowserHash may continue it (login CSRF).
type LoginRequest struct {
	ID          string
	ClientID    string
	Request     []byte // the validated authorization request as JSON (its shape belongs to the sign-in package)
	BrowserHash []byte
	CreatedAt   time.Time
	ExpiresAt   time.Time
	// UserID is set once the password (or the browser session) identified the user; the request then
	// waits for the second factor, consent or a password change.
	UserID string
	// PasswordAt is when the password was verified in this request; zero: not in this request.
	PasswordAt time.Time
	// DoneAt is when a code (or an error) was sent for it; a done request cannot be continued.
	DoneAt time.Time
}

// Authentication methods (RFC 8176 names) recorded in a browser session's AMR.
const (
	AMRPassword = "pwd"
	AMROTP      = "otp" // a TOTP code
	AMRRecovery = "kba" // a recovery code: something the user keeps, checked like a shared secret
	AMRMFA      = "mfa" // more than one factor
)

// BrowserSession is a browser's sign-in: tokens issued from it carry its ID as sid, and ending it
// revokes them. The cookie holds ID and a secret; only the secret's keyed hash is stored.
type BrowserSession struct {
	ID         string // the sid
	SecretHash []byte
	UserID     string
	CreatedAt  time.Time
	AuthTime   time.Time // when the user last authenticated in it (auth_time)
	AMR        []string  // how (RFC 8176)
	MFAAt      time.Time // when a second factor was last passed in it; zero: never
	LastSeenAt time.Time
	ExpiresAt  time.Time
	EndedAt    time.Time // zero: not ended
	EndedBy    string    // "user", "user:elsewhere", "logout", "admin", ...
	IP         string
	UserAgent  string
}

// Active reports whether the session can still be used at now.
func (s *BrowserSession) Active(now time.Time) bool {
	return s.EndedAt.IsZero() && now.Before(s.ExpiresAt)
}

// AuthCode is an authorization code (RFC 6749 §4.1.2): one-time, short-lived, bound to the client,
// redirect URI, PKCE challenge and browser session it was issued for. Only a keyed hash is stored.
type AuthCode struct {
	Hash          []byte
	ID            string // public identifier: the grant's origin in audit and revocation
	ClientID      string
	RedirectURI   string
	UserID        string
	SessionID     string
	Scope         []string
	Nonce         string
	CodeChallenge string // S256 challenge; "" when a confidential client sent none
	AuthTime      time.Time
	AMR           []string
	ACR           string
	GrantID       string // every token issued from the code carries it: a replay revokes the grant
	CreatedAt     time.Time
	ExpiresAt     time.Time
	UsedAt        time.Time // zero: not redeemed
}

// Consent records the scopes a user allowed a third-party client.
type Consent struct {
	UserID    string
	ClientID  string
	Scope     []string
	GrantedAt time.Time
}

// TOTPFactor is a user's authenticator app (RFC 6238). The secret is sealed with the master key.
type TOTPFactor struct {
	UserID      string
	Secret      []byte // sealed
	CreatedAt   time.Time
	ConfirmedAt time.Time // zero: enrolment not finished; an unconfirmed factor signs nobody in
	LastStep    int64     // the last time step accepted: a code is good once (RFC 6238 §5.2)
}

// SignInStore is the sign-in part of Store.
type SignInStore interface {
	// Login requests. UpdateLoginRequest stores the progress (UserID, PasswordAt, Request) of a
	// request not yet done: ErrNotFound for one that is done or gone (a finished sign-in cannot be
	// moved on by a slower tab). FinishLoginRequest is what sets DoneAt.
	CreateLoginRequest(ctx context.Context, r *LoginRequest) error
	GetLoginRequest(ctx context.Context, id string) (*LoginRequest, error)
	UpdateLoginRequest(ctx context.Context, r *LoginRequest) error
	// FinishLoginRequest marks a request done at `at` unless it is done already (ErrConflict): a
	// request yields one answer, however many tabs post it.
	FinishLoginRequest(ctx context.Context, id string, at time.Time) error

	// Browser sessions.
	CreateBrowserSession(ctx context.Context, s *BrowserSession) error
	GetBrowserSession(ctx context.Context, id string) (*BrowserSession, error)
	// ListBrowserSessions returns a user's sessions, newest first: all when activeAt is zero, else
	// those neither ended nor expired at activeAt.
	ListBrowserSessions(ctx context.Context, userID string, activeAt time.Time) ([]BrowserSession, error)
	// ReauthBrowserSession records a new authentication in an active session (prompt=login, step-up):
	// new secret (the old cookie stops working), auth time, methods and second-factor time.
	// ErrNotFound when the session is not active at authTime.
	ReauthBrowserSession(ctx context.Context, id string, secretHash []byte, authTime time.Time, amr []string, mfaAt time.Time) error
	// TouchBrowserSession sets LastSeenAt (best effort bookkeeping).
	TouchBrowserSession(ctx context.Context, id string, at time.Time) error
	// EndBrowserSession ends one active session; ErrNotFound when none is active with that ID.
	EndBrowserSession(ctx context.Context, id, by string, at time.Time) error
	// EndBrowserSessions ends every active session of a user except `except` ("" for none) and
	// returns the IDs it ended.
	EndBrowserSessions(ctx context.Context, userID, except, by string, at time.Time) ([]string, error)

	// Clients a session signed in to (back-channel logout tells them when it ends). AddSessionClient
	// records that the session issued a code to the client; recording a pair again changes nothing
	// (first_at stays the first). SessionClients lists them in the order they were first signed in
	// to (ties by client ID); none for an unknown session. Prune forgets them with their session.
	AddSessionClient(ctx context.Context, sessionID, clientID string, at time.Time) error
	SessionClients(ctx context.Context, sessionID string) ([]string, error)

	// Authorization codes. UseAuthCode marks the code used and returns it; when it was used before it
	// returns the code with ErrConflict (the caller revokes what it issued); ErrNotFound otherwise.
	CreateAuthCode(ctx context.Context, c *AuthCode) error
	UseAuthCode(ctx context.Context, hash []byte, at time.Time) (*AuthCode, error)

	// Consents of users to third-party clients.
	GetConsent(ctx context.Context, userID, clientID string) (*Consent, error)
	PutConsent(ctx context.Context, c *Consent) error // create or replace
	DeleteConsents(ctx context.Context, userID string) error

	// Second factors. PutTOTP creates or replaces a user's (unconfirmed) factor; ConfirmTOTP
	// confirms it at step; UseTOTPStep accepts step once (ErrConflict for a step at or before the last
	// accepted one, ErrNotFound without a confirmed factor). DeleteSecondFactors removes the factor and
	// the recovery codes (mfa reset).
	PutTOTP(ctx context.Context, f *TOTPFactor) error
	GetTOTP(ctx context.Context, userID string) (*TOTPFactor, error)
	ConfirmTOTP(ctx context.Context, userID string, step int64, at time.Time) error
	UseTOTPStep(ctx context.Context, userID string, step int64) error
	DeleteSecondFactors(ctx context.Context, userID string) error
	// SetRecoveryCodes replaces a user's recovery codes with these keyed hashes. UseRecoveryCode
	// spends one: ErrNotFound when no unused code has that hash.
	SetRecoveryCodes(ctx context.Context, userID string, hashes [][]byte, at time.Time) error
	UseRecoveryCode(ctx context.Context, userID string, hash []byte, at time.Time) error
	CountRecoveryCodes(ctx context.Context, userID string) (unused int, err error)

	// Failed sign-ins, counted per key ("user:<id>", "ip:<addr>") in fixed windows: AddSignInFailure
	// counts one at `at` (a window older than `window` starts again at 1) and returns the count and
	// when the window started; SignInFailures reads them without counting; ClearSignInFailures forgets
	// a key (a successful sign-in clears its account's count, never its IP's).
	AddSignInFailure(ctx context.Context, key string, at time.Time, window time.Duration) (count int, since time.Time, err error)
	SignInFailures(ctx context.Context, key string, at time.Time, window time.Duration) (count int, since time.Time, err error)
	ClearSignInFailures(ctx context.Context, key string) error
}

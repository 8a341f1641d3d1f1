package ui

import (
	"time"
)

// Page is one of the page structs below; Render accepts each as a value or a pointer.
type Page interface{ common() *Common }

// Common is what every page has.
type Common struct {
	Title       string   // <title> and <h1> unless the page sets its own heading; "" uses the page's default
	CSRF        string   // hidden field "csrf" in every POST form to Signet
	FormTargets []string // extra origins for CSP form-action (e.g. the client's redirect origin)
	SignedInAs  string   // "Signed in as <name>" in the header; "" hides it
	AccountURL  string   // link in the header when SignedInAs is set
	Banner      *Banner  // impersonation banner on every page when set
}

// common has a value receiver so that both a page and a pointer to it are a Page.
func (c Common) common() *Common { return &c }

// Banner is the impersonation banner: "Alice is acting as Bob until 14:05 UTC — Exit".
type Banner struct {
	Actor, Subject string
	Until          time.Time
	ExitURL        string
}

// Field is a hidden form field.
type Field struct{ Name, Value string }

// Login is the sign-in form: POST to Action with Hidden, "csrf", "username" and "password".
type Login struct {
	Common
	Action     string
	Hidden     []Field
	ClientName string // "to continue to <ClientName>"
	Username   string // prefilled
	Error      string // wrong password, locked account, throttled…
	Notice     string // informational, e.g. an expired sign-in request
}

// SecondFactor asks for field "code": a 6-digit code or a recovery code.
type SecondFactor struct {
	Common
	Action   string
	Hidden   []Field
	Error    string
	Username string
}

// EnrollTOTP shows the QR code and the secret, and asks for field "code" to confirm.
type EnrollTOTP struct {
	Common
	Action    string
	Hidden    []Field
	QRDataURI string // "data:image/png;base64,…"; anything else shows no image
	Secret    string // base32, shown in groups of 4
	Error     string
	Required  bool // the organisation requires a second factor: no Cancel link
}

// RecoveryCodes shows freshly generated recovery codes once, with a Continue button (POST to Action).
type RecoveryCodes struct {
	Common
	Action string
	Hidden []Field
	Codes  []string
}

// ChangePassword asks for "current_password", "new_password" and "confirm_password".
type ChangePassword struct {
	Common
	Action    string
	Hidden    []Field
	Error     string
	MinLength int
	Forced    bool // the password must be changed before continuing
}

// Consent asks whether ClientName may have Scopes: "decision" = "allow" or "deny".
type Consent struct {
	Common
	Action     string
	Hidden     []Field
	ClientName string
	ClientURI  string
	Scopes     []Scope
	Username   string
}

// Scope is one permission on the consent page.
type Scope struct{ Name, Description string }

// Error is a page that explains what went wrong; it links only to Signet's own pages.
type Error struct {
	Common
	Message string
	Detail  string
	Code    string // the OAuth error code, shown small
}

// LogoutConfirm asks "Sign out of <Product>?" with one Sign out button (POST to Action).
type LogoutConfirm struct {
	Common
	Action     string
	Hidden     []Field
	ClientName string
}

// LoggedOut says "You have signed out", with a link back when ReturnURL is set.
type LoggedOut struct {
	Common
	ReturnURL  string
	ReturnName string
}

// FormPost is the OAuth form_post response: a form to Action (the client's redirect URI) with Fields,
// submitted by a nonce-allowed inline script, with a Continue button for browsers without JavaScript.
// It carries no csrf field: the form goes to the client, not to Signet.
type FormPost struct {
	Common
	Action string
	Fields []Field
}

// Account is the account page: profile, second factor, sessions and who acted as this user.
type Account struct {
	Common
	Username, DisplayName, Email string
	Sessions                     []SessionRow
	TOTPEnrolled                 bool
	RecoveryLeft                 int
	MFARequired                  bool
	Acts                         []ActRow // delegations and impersonations of this account, newest first
	EnrollURL                    string   // GET link to start TOTP enrolment
	RemoveTOTPAction             string   // POST to remove the factor; "" hides it
	NewRecoveryAction            string   // POST to regenerate recovery codes
	EndSessionAction             string   // POST with "session" = SessionRow.ID, or "others"
	ChangePasswordURL            string
	SignOutURL                   string // GET link to sign out here
	Message                      string // e.g. "Signed out 2 other sessions"
}

// SessionRow is one browser session on the account page.
type SessionRow struct {
	ID, Device, IP    string
	Started, LastSeen time.Time
	Methods           []string // authentication methods (amr values: "pwd", "otp"…)
	Current           bool
}

// ActRow is one impersonation or delegation of the account.
type ActRow struct {
	Kind                  string // "impersonation" or "delegation"
	Actor, Client, Reason string
	Started, Until        time.Time
	Ended                 time.Time // zero: still active (until Until)
	EndedHow              string
}

// pageFiles maps every page type to its template.
var pageFiles = []struct {
	page Page
	file string
}{
	{Login{}, "login.html"},
	{SecondFactor{}, "second_factor.html"},
	{EnrollTOTP{}, "enroll_totp.html"},
	{RecoveryCodes{}, "recovery_codes.html"},
	{ChangePassword{}, "change_password.html"},
	{Consent{}, "consent.html"},
	{Error{}, "error.html"},
	{LogoutConfirm{}, "logout_confirm.html"},
	{LoggedOut{}, "logged_out.html"},
	{FormPost{}, "form_post.html"},
	{Account{}, "account.html"},
}

func defaultTitle(p Page, product string) string {
	switch p := p.(type) {
	case Login:
		return "Sign in"
	case SecondFactor:
		return "Enter your verification code"
	case EnrollTOTP:
		return "Set up an authenticator app"
	case RecoveryCodes:
		return "Save your recovery codes"
	case ChangePassword:
		if p.Forced {
			return "Choose a new password"
		}
		return "Change your password"
	case Consent:
		return "Allow access?"
	case Error:
		return "Something went wrong"
	case LogoutConfirm:
		return "Sign out of " + product + "?"
	case LoggedOut:
		return "You have signed out"
	case FormPost:
		return "Continuing…"
	case Account:
		return "Your account"
	}
	return product
}

package oauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/signet-id/signet/internal/store"
)

// Error is an OAuth error response (RFC 6749 §5.2): the code and status the caller sees, a
// description that says what to change, and a cause that is only logged.
type Error struct {
	Code        string
	Description string
	Status      int
	// Challenge, when set, is sent as WWW-Authenticate (RFC 6749 §5.2 for Basic, RFC 6750 for Bearer).
	Challenge string
	// RetryAfter, when positive, is sent as Retry-After in seconds (rate limiting).
	RetryAfter int
	// Cause is for logs only; it never reaches the caller.
	Cause error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Code + ": " + e.Description + ": " + e.Cause.Error()
	}
	return e.Code + ": " + e.Description
}

func (e *Error) Unwrap() error { return e.Cause }

// WithCause attaches an internal cause for the logs.
func (e *Error) WithCause(err error) *Error { e.Cause = err; return e }

// RFC 6749, 7009, 7662, 8693 and 8707 error codes.
const (
	CodeInvalidRequest         = "invalid_request"
	CodeInvalidClient          = "invalid_client"
	CodeInvalidGrant           = "invalid_grant"
	CodeUnauthorizedClient     = "unauthorized_client"
	CodeUnsupportedGrantType   = "unsupported_grant_type"
	CodeInvalidScope           = "invalid_scope"
	CodeInvalidTarget          = "invalid_target"
	CodeAccessDenied           = "access_denied"
	CodeUnsupportedTokenType   = "unsupported_token_type"
	CodeServerError            = "server_error"
	CodeTemporarilyUnavailable = "temporarily_unavailable"
	CodeSlowDown               = "slow_down"
)

func newError(code string, status int, format string, args []any) *Error {
	return &Error{Code: code, Status: status, Description: fmt.Sprintf(format, args...)}
}

// Constructors, one per code. The format strings are the error catalog: every one of them must be
// listed in docs/errors.md (a test checks this), so pass a literal format.

func InvalidRequest(format string, args ...any) *Error {
	return newError(CodeInvalidRequest, http.StatusBadRequest, format, args)
}

func InvalidClient(format string, args ...any) *Error {
	return newError(CodeInvalidClient, http.StatusUnauthorized, format, args)
}

func InvalidGrant(format string, args ...any) *Error {
	return newError(CodeInvalidGrant, http.StatusBadRequest, format, args)
}

func UnauthorizedClient(format string, args ...any) *Error {
	return newError(CodeUnauthorizedClient, http.StatusBadRequest, format, args)
}

func UnsupportedGrantType(format string, args ...any) *Error {
	return newError(CodeUnsupportedGrantType, http.StatusBadRequest, format, args)
}

func InvalidScope(format string, args ...any) *Error {
	return newError(CodeInvalidScope, http.StatusBadRequest, format, args)
}

func InvalidTarget(format string, args ...any) *Error {
	return newError(CodeInvalidTarget, http.StatusBadRequest, format, args)
}

func AccessDenied(format string, args ...any) *Error {
	return newError(CodeAccessDenied, http.StatusForbidden, format, args)
}

func UnsupportedTokenType(format string, args ...any) *Error {
	return newError(CodeUnsupportedTokenType, http.StatusBadRequest, format, args)
}

func TemporarilyUnavailable(format string, args ...any) *Error {
	return newError(CodeTemporarilyUnavailable, http.StatusServiceUnavailable, format, args)
}

func RateLimited(retryAfter int, format string, args ...any) *Error {
	e := newError(CodeSlowDown, http.StatusTooManyRequests, format, args)
	e.RetryAfter = retryAfter
	return e
}

// ServerError reports a real server fault; the cause is logged, never shown. A database that is
// unreachable or refusing work for now (store.Unavailable) is not a fault of the request: it is
// answered 503 temporarily_unavailable with Retry-After, so clients retry instead of giving up.
func ServerError(cause error) *Error {
	if store.Unavailable(cause) {
		e := TemporarilyUnavailable("the database is unreachable or busy; retry in a moment")
		e.RetryAfter, e.Cause = 1, cause
		return e
	}
	return &Error{Code: CodeServerError, Status: http.StatusInternalServerError,
		Description: "the server failed to handle the request; the operator's logs have the details", Cause: cause}
}

// AsError turns any error into an *Error; errors that are not already OAuth errors are server faults.
func AsError(err error) *Error {
	var oe *Error
	if errors.As(err, &oe) {
		return oe
	}
	return ServerError(err)
}

// errorBody is the JSON shape of an error response.
type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// WriteError renders err as an RFC 6749 JSON error response. It is the only place errors are written.
func WriteError(w http.ResponseWriter, err error) {
	oe := AsError(err)
	h := w.Header()
	if oe.Challenge != "" {
		h.Set("WWW-Authenticate", oe.Challenge)
	}
	if oe.RetryAfter > 0 {
		h.Set("Retry-After", fmt.Sprint(oe.RetryAfter))
	}
	writeJSON(w, oe.Status, errorBody{Error: oe.Code, Description: oe.Description})
}

// writeJSON renders a JSON response with the no-store headers RFC 6749 §5.1 requires.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // descriptions quote commands with <placeholders>
	b := buf.Bytes()
	if err := enc.Encode(v); err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	} else {
		b = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	w.Write(b)
}

// CodeInvalidToken is RFC 6750's code for a bad Bearer token.
const CodeInvalidToken = "invalid_token"

// InvalidToken reports a Bearer token that cannot authorize the call (RFC 6750 §3.1).
func InvalidToken(format string, args ...any) *Error {
	e := newError(CodeInvalidToken, http.StatusUnauthorized, format, args)
	e.Challenge = `Bearer error="invalid_token"`
	return e
}

// OAuthCode lets packages that must not import oauth (metrics) read the code.
func (e *Error) OAuthCode() string { return e.Code }

// Authorization endpoint error codes (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6) that the token
// endpoint never sends. internal/authorize refuses authorization requests with them.
const (
	CodeUnsupportedResponseType  = "unsupported_response_type"
	CodeRequestNotSupported      = "request_not_supported"
	CodeRequestURINotSupported   = "request_uri_not_supported"
	CodeRegistrationNotSupported = "registration_not_supported"
)

func UnsupportedResponseType(format string, args ...any) *Error {
	return newError(CodeUnsupportedResponseType, http.StatusBadRequest, format, args)
}

func RequestNotSupported(format string, args ...any) *Error {
	return newError(CodeRequestNotSupported, http.StatusBadRequest, format, args)
}

func RequestURINotSupported(format string, args ...any) *Error {
	return newError(CodeRequestURINotSupported, http.StatusBadRequest, format, args)
}

func RegistrationNotSupported(format string, args ...any) *Error {
	return newError(CodeRegistrationNotSupported, http.StatusBadRequest, format, args)
}

// OIDC Core §3.1.2.6 codes: the authorization endpoint sends them when it cannot answer without
// showing the user a page (prompt=none) or when the user declined.
const (
	CodeLoginRequired            = "login_required"
	CodeConsentRequired          = "consent_required"
	CodeInteractionRequired      = "interaction_required"
	CodeAccountSelectionRequired = "account_selection_required"
)

func LoginRequired(format string, args ...any) *Error {
	return newError(CodeLoginRequired, http.StatusBadRequest, format, args)
}

func ConsentRequired(format string, args ...any) *Error {
	return newError(CodeConsentRequired, http.StatusBadRequest, format, args)
}

func InteractionRequired(format string, args ...any) *Error {
	return newError(CodeInteractionRequired, http.StatusBadRequest, format, args)
}

func AccountSelectionRequired(format string, args ...any) *Error {
	return newError(CodeAccountSelectionRequired, http.StatusBadRequest, format, args)
}

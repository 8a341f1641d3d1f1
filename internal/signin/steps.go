package signin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/mfa"
	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/ui"
)

// Messages shown on the sign-in pages. A wrong password and an unknown username read the same:
// the page must not tell who has an account.
const (
	msgWrongPassword = "The username or password is incorrect."
	msgLocked        = "This account is locked. Ask your administrator to unlock it."
	msgWrongCode     = "That code is not right. Enter the current 6-digit code from your authenticator app, or one of your recovery codes."
	msgReusedCode    = "That code was already used. Wait for your authenticator app to show the next one."
	msgMalformedCode = "Enter the 6-digit code from your authenticator app, or a recovery code (10 letters and digits)."
)

// maxFactorAttempts ends a login request after this many wrong second-factor codes: the password
// it proved is not worth more guesses.
const maxFactorAttempts = 5

// postStep parses a step's form and loads its request.
func (h *Handler) postStep(w http.ResponseWriter, r *http.Request) *loaded {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		h.showError(w, r, http.StatusBadRequest, "The form could not be read", "Go back, reload the page and try again.")
		return nil
	}
	return h.load(w, r, true)
}

// advance stores the request's progress and shows its next step (POST-redirect-GET).
func (h *Handler) advance(w http.ResponseWriter, r *http.Request, l *loaded) {
	if err := h.save(r.Context(), l.lr, l.p); err != nil {
		h.serverFault(w, r, err)
		return
	}
	http.Redirect(w, r, stepURL(l.lr.ID), http.StatusSeeOther)
}

// password checks a username and password (throttled per account and per address, argon2id work
// capped), and identifies the request's user.
func (h *Handler) password(w http.ResponseWriter, r *http.Request) {
	l := h.postStep(w, r)
	if l == nil {
		return
	}
	ctx := r.Context()
	username := strings.TrimSpace(r.PostFormValue("username"))
	password := r.PostFormValue("password")
	if username == "" || password == "" || len(username) > 256 || len(password) > 1024 || !utf8.ValidString(username) {
		h.renderLogin(w, r, l, http.StatusBadRequest, "Enter your username and password.")
		return
	}
	ip := clientIP(r)
	if wait, err := h.Throttle.blocked(ctx, h.Store, username, ip, h.Now()); err != nil {
		h.serverFault(w, r, err)
		return
	} else if wait > 0 {
		h.throttled(w, r, l, wait)
		return
	}
	u, err := h.Store.GetUserByUsername(ctx, username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.serverFault(w, r, err)
		return
	}
	phc := dummyPHC
	if u != nil && u.PasswordHash != "" {
		phc = u.PasswordHash
	}
	ok, err := h.verifyPassword(ctx, phc, password)
	if err != nil {
		w.Header().Set("Retry-After", "2")
		h.showError(w, r, http.StatusServiceUnavailable, "Too many sign-ins at once", "Signet is busy checking other sign-ins. Wait a moment and try again.")
		return
	}
	if u == nil || u.PasswordHash == "" || !ok {
		h.failedPassword(w, r, l, username, u)
		return
	}
	if u.Locked {
		// Said only to someone who knows the password: it reveals nothing to a guesser.
		h.auditSignIn(ctx, r, audit.TypeSignInFailed, u.ID, l.lr.ClientID, "account locked", username)
		h.renderLogin(w, r, l, http.StatusForbidden, msgLocked)
		return
	}
	if err := h.Throttle.clear(ctx, h.Store, username); err != nil {
		h.Log.Warn("could not clear failed sign-ins", "err", err)
	}
	l.lr.UserID, l.lr.PasswordAt = u.ID, h.Now()
	l.p.MFAAt, l.p.MFAMethod = time.Time{}, ""
	h.advance(w, r, l)
}

// dummyPHC is verified when the username is unknown, so both answers take as long: it is made
// with the same argon2id parameters as every stored password.
var dummyPHC = secrets.HashPassword(secrets.RandomString(16))

// DummyPHC is the stand-in hash (its parameters are what tests compare).
func DummyPHC() string { return dummyPHC }

// PasswordChecks counts the argon2id verifications run so far (for metrics, and for tests that
// show an unknown username costs exactly what a known one does).
func (h *Handler) PasswordChecks() uint64 { return h.passwordChecks.Load() }

// HashSlots is how many password hashes may run at once.
func (h *Handler) HashSlots() int { return cap(h.hashSlot) }

// verifyPassword runs argon2id in one of the limited hashing slots, waiting at most a few seconds
// for one.
func (h *Handler) verifyPassword(ctx context.Context, phc, password string) (bool, error) {
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	select {
	case h.hashSlot <- struct{}{}:
	case <-wait.Done():
		return false, wait.Err()
	}
	defer func() { <-h.hashSlot }()
	h.passwordChecks.Add(1)
	var ok bool
	atLowPriority(func() { ok = secrets.VerifyPassword(phc, password) })
	return ok, nil
}

func (h *Handler) failedPassword(w http.ResponseWriter, r *http.Request, l *loaded, username string, u *store.User) {
	ctx := r.Context()
	subject := ""
	if u != nil {
		subject = u.ID
	}
	wait, err := h.Throttle.count(ctx, h.Store, username, clientIP(r), h.Now())
	if err != nil {
		h.Log.Warn("could not count a failed sign-in", "err", err)
	}
	h.auditSignIn(ctx, r, audit.TypeSignInFailed, subject, l.lr.ClientID, "wrong username or password", username)
	if wait > 0 {
		h.auditSignIn(ctx, r, audit.TypeSignInThrottled, subject, l.lr.ClientID, "too many failed sign-ins", username)
		h.throttled(w, r, l, wait)
		return
	}
	h.renderLogin(w, r, l, http.StatusUnauthorized, msgWrongPassword)
}

func (h *Handler) throttled(w http.ResponseWriter, r *http.Request, l *loaded, wait time.Duration) {
	retryAfter(w, wait)
	h.renderLogin(w, r, l, http.StatusTooManyRequests, fmt.Sprintf("Too many failed sign-ins. Try again in %s.", roundUp(wait)))
}

// retryAfter sets Retry-After to wait, rounded up to the second.
func retryAfter(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", fmt.Sprint(int((wait+time.Second-1)/time.Second)))
}

func roundUp(d time.Duration) string {
	if d <= time.Minute {
		return "a minute"
	}
	return fmt.Sprintf("%d minutes", int((d+time.Minute-1)/time.Minute))
}

func (h *Handler) auditSignIn(ctx context.Context, r *http.Request, typ, subject, client, reason, username string) {
	event := audit.Event{Type: typ, Subject: subject, Client: client, Details: requestDetails(r, map[string]any{
		"reason": reason, "username": clip(username, 64)})}
	if err := h.Audit.Record(ctx, event); err != nil {
		h.Log.Error("could not audit a sign-in event", "err", err, "type", typ)
	}
}

// factor checks a TOTP code or a recovery code for the request's user.
func (h *Handler) factor(w http.ResponseWriter, r *http.Request) {
	l, u := h.postUserStep(w, r)
	if u == nil {
		return
	}
	ctx := r.Context()
	if wait, err := h.Throttle.factorBlocked(ctx, h.Store, u.ID, h.Now()); err != nil {
		h.serverFault(w, r, err)
		return
	} else if wait > 0 {
		h.factorThrottled(w, r, l, wait)
		return
	}
	method, message, err := h.checkFactor(ctx, u, r.PostFormValue("code"))
	if err != nil {
		h.serverFault(w, r, err)
		return
	}
	if message != "" {
		l.p.Attempts++
		h.auditSignIn(ctx, r, audit.TypeSignInFailed, u.ID, l.lr.ClientID, "wrong second factor", u.Username)
		wait, err := h.Throttle.countFactor(ctx, h.Store, u.ID, h.Now())
		if err != nil {
			h.Log.Warn("could not count a wrong second-factor code", "err", err)
		}
		if l.p.Attempts >= maxFactorAttempts {
			h.Store.FinishLoginRequest(ctx, l.lr.ID, h.Now())
			h.showError(w, r, http.StatusUnauthorized, "Too many wrong codes", "This sign-in was stopped after too many wrong codes. Go back to the application and sign in again.")
			return
		}
		if err := h.save(ctx, l.lr, l.p); err != nil {
			h.serverFault(w, r, err)
			return
		}
		if wait > 0 {
			h.auditSignIn(ctx, r, audit.TypeSignInThrottled, u.ID, l.lr.ClientID, "too many wrong second-factor codes", u.Username)
			h.factorThrottled(w, r, l, wait)
			return
		}
		h.next(w, r, l, http.StatusUnauthorized, message)
		return
	}
	if err := h.Throttle.clearFactor(ctx, h.Store, u.ID); err != nil {
		h.Log.Warn("could not clear wrong second-factor codes", "err", err)
	}
	l.p.MFAAt, l.p.MFAMethod = h.Now(), method
	h.advance(w, r, l)
}

// factorThrottled answers a second-factor code while the user's wrong codes are over the limit.
func (h *Handler) factorThrottled(w http.ResponseWriter, r *http.Request, l *loaded, wait time.Duration) {
	retryAfter(w, wait)
	h.next(w, r, l, http.StatusTooManyRequests, fmt.Sprintf("Too many wrong codes. Try again in %s.", roundUp(wait)))
}

// postUserStep is postStep for the steps that need the request's user; it answers the request
// itself (and returns a nil user) when there is none.
func (h *Handler) postUserStep(w http.ResponseWriter, r *http.Request) (*loaded, *store.User) {
	l := h.postStep(w, r)
	if l == nil {
		return nil, nil
	}
	u, err := h.userOf(r.Context(), l)
	if err != nil || u == nil {
		h.stepFault(w, r, l, err)
		return nil, nil
	}
	return l, u
}

// stepFault answers a POST for a step the request is not at (the user vanished or was locked).
func (h *Handler) stepFault(w http.ResponseWriter, r *http.Request, l *loaded, err error) {
	if err != nil {
		h.serverFault(w, r, err)
		return
	}
	http.Redirect(w, r, stepURL(l.lr.ID), http.StatusSeeOther)
}

// checkFactor verifies a code: a TOTP code (each good once) or an unused recovery code (spent).
// It returns the RFC 8176 method, or the message for the page.
func (h *Handler) checkFactor(ctx context.Context, u *store.User, code string) (method, message string, err error) {
	code = strings.TrimSpace(code)
	if mfa.LooksLikeRecoveryCode(code) {
		n, ok := mfa.NormalizeRecoveryCode(code)
		if !ok {
			return "", msgMalformedCode, nil
		}
		err := h.Store.UseRecoveryCode(ctx, u.ID, h.recoveryHash(u.ID, n), h.Now())
		switch {
		case errors.Is(err, store.ErrNotFound):
			return "", msgWrongCode, nil
		case err != nil:
			return "", "", err
		}
		return store.AMRRecovery, "", nil
	}
	f, err := h.Store.GetTOTP(ctx, u.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", msgWrongCode, nil
	case err != nil:
		return "", "", err
	case f.ConfirmedAt.IsZero():
		return "", msgWrongCode, nil
	}
	secret, err := h.openTOTP(u.ID, f.Secret)
	if err != nil {
		return "", "", err
	}
	step, verr := mfa.Verify(secret, code, h.Now(), f.LastStep)
	switch {
	case errors.Is(verr, mfa.ErrMalformed):
		return "", msgMalformedCode, nil
	case errors.Is(verr, mfa.ErrReplay):
		return "", msgReusedCode, nil
	case verr != nil:
		return "", msgWrongCode, nil
	}
	err = h.Store.UseTOTPStep(ctx, u.ID, step)
	switch {
	case errors.Is(err, store.ErrConflict):
		return "", msgReusedCode, nil
	case err != nil:
		return "", "", err
	}
	return store.AMROTP, "", nil
}

// recoveryHash is what is stored of a normalized recovery code: keyed, and bound to its user.
func (h *Handler) recoveryHash(userID, normalized string) []byte {
	return h.Secrets.HashToken("recovery\x00" + userID + "\x00" + normalized)
}

func totpAAD(userID string) []byte { return []byte("totp:" + userID) }

func (h *Handler) openTOTP(userID string, sealed []byte) ([]byte, error) {
	return h.Secrets.Open(sealed, totpAAD(userID))
}

// renderEnrol shows TOTP enrolment: the unconfirmed factor of the last few minutes is shown
// again (a reload must not invalidate what the app scanned), else a new one is made.
func (h *Handler) renderEnrol(w http.ResponseWriter, r *http.Request, l *loaded, u *store.User, status int, message string) {
	e, err := h.enrolment(r.Context(), u)
	if err != nil {
		h.serverFault(w, r, err)
		return
	}
	common := titled(h.common(l), "Set up two-step verification")
	h.UI.Render(w, status, &ui.EnrollTOTP{Common: common, Action: enrolPath, Hidden: hidden(l), QRDataURI: e.QRDataURI(), Secret: e.Base32, Error: message, Required: true})
}

// enrolment returns the user's pending TOTP enrolment, creating one when there is none recent.
func (h *Handler) enrolment(ctx context.Context, u *store.User) (*mfa.Enrollment, error) {
	f, err := h.Store.GetTOTP(ctx, u.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if f != nil && f.ConfirmedAt.IsZero() && h.Now().Sub(f.CreatedAt) < loginTTL {
		secret, err := h.openTOTP(u.ID, f.Secret)
		if err != nil {
			return nil, err
		}
		return mfa.EnrollmentFor(secret, h.TOTPIssuer, u.Username)
	}
	if f != nil && !f.ConfirmedAt.IsZero() {
		return nil, errors.New("the user already has a confirmed second factor")
	}
	e, err := mfa.NewEnrollment(h.TOTPIssuer, u.Username)
	if err != nil {
		return nil, err
	}
	now := h.Now()
	if err := h.Store.PutTOTP(ctx, &store.TOTPFactor{UserID: u.ID, Secret: h.Secrets.Seal(e.Secret, totpAAD(u.ID)), CreatedAt: now}); err != nil {
		return nil, err
	}
	return e, nil
}

// confirmEnrolment checks the first code of a pending enrolment, confirms the factor and makes new
// recovery codes, which it returns to be shown once.
func (h *Handler) confirmEnrolment(ctx context.Context, u *store.User, code string) (codes []string, message string, err error) {
	f, err := h.Store.GetTOTP(ctx, u.ID)
	if errors.Is(err, store.ErrNotFound) || err == nil && !f.ConfirmedAt.IsZero() {
		return nil, "This setup has expired. Scan the new code below.", nil
	}
	if err != nil {
		return nil, "", err
	}
	secret, err := h.openTOTP(u.ID, f.Secret)
	if err != nil {
		return nil, "", err
	}
	step, verr := mfa.Verify(secret, strings.TrimSpace(code), h.Now(), f.LastStep)
	switch {
	case errors.Is(verr, mfa.ErrMalformed):
		return nil, "Enter the 6-digit code your authenticator app shows for Signet.", nil
	case verr != nil:
		return nil, "That code is not right. Check that your phone's clock is correct and enter the current code.", nil
	}
	now := h.Now()
	if err := h.Store.ConfirmTOTP(ctx, u.ID, step, now); err != nil {
		return nil, "", err
	}
	if codes, err = h.storeRecoveryCodes(ctx, u.ID); err != nil {
		return nil, "", err
	}
	if err := h.Audit.Record(ctx, audit.Event{Type: audit.TypeMFAChanged, Actor: u.ID, Subject: u.ID, Details: map[string]any{"action": "totp enrolled", "recovery_codes": len(codes)}}); err != nil {
		return nil, "", err
	}
	return codes, "", nil
}

// storeRecoveryCodes makes a user's new recovery codes (replacing any), stores their hashes, and
// returns them to be shown once.
func (h *Handler) storeRecoveryCodes(ctx context.Context, userID string) ([]string, error) {
	codes := mfa.NewRecoveryCodes()
	hashes := make([][]byte, len(codes))
	for i, c := range codes {
		n, _ := mfa.NormalizeRecoveryCode(c)
		hashes[i] = h.recoveryHash(userID, n)
	}
	return codes, h.Store.SetRecoveryCodes(ctx, userID, hashes, h.Now())
}

// enrol confirms the TOTP enrolment a sign-in required, then shows the recovery codes once.
func (h *Handler) enrol(w http.ResponseWriter, r *http.Request) {
	l, u := h.postUserStep(w, r)
	if u == nil {
		return
	}
	ctx := r.Context()
	codes, message, err := h.confirmEnrolment(ctx, u, r.PostFormValue("code"))
	if err != nil {
		h.serverFault(w, r, err)
		return
	}
	if message != "" {
		h.renderEnrol(w, r, l, u, http.StatusBadRequest, message)
		return
	}
	l.p.MFAAt, l.p.MFAMethod, l.p.RecoveryPending = h.Now(), store.AMROTP, true
	if err := h.save(ctx, l.lr, l.p); err != nil {
		h.serverFault(w, r, err)
		return
	}
	h.UI.Render(w, http.StatusOK, &ui.RecoveryCodes{Common: titled(h.common(l), "Save your recovery codes"), Action: recoveryPath, Hidden: hidden(l), Codes: codes})
}

// recoverySeen continues after the recovery codes were shown.
func (h *Handler) recoverySeen(w http.ResponseWriter, r *http.Request) {
	l := h.postStep(w, r)
	if l == nil {
		return
	}
	l.p.RecoveryPending = false
	h.advance(w, r, l)
}

// changePassword is the password change a sign-in requires (bootstrap admin, reset passwords).
func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request) {
	l, u := h.postUserStep(w, r)
	if u == nil {
		return
	}
	ctx := r.Context()
	if message := h.setPassword(ctx, r, u, r.PostFormValue("current_password"), r.PostFormValue("new_password"), r.PostFormValue("confirm_password")); message != "" {
		h.UI.Render(w, http.StatusBadRequest, &ui.ChangePassword{Common: titled(h.common(l), "Choose a new password"), Action: changePath, Hidden: hidden(l), Error: message, MinLength: h.MinPassword, Forced: true})
		return
	}
	l.p.PasswordChanged = true
	h.advance(w, r, l)
}

// setPassword checks the current password and a new one and stores it; it returns the message
// for the page when it refuses.
func (h *Handler) setPassword(ctx context.Context, r *http.Request, u *store.User, current, next, confirm string) string {
	ok, err := h.verifyPassword(ctx, u.PasswordHash, current)
	switch {
	case err != nil:
		return "Signet is busy; try again in a moment."
	case !ok:
		return "Your current password is not right."
	case next != confirm:
		return "The new passwords do not match."
	case utf8.RuneCountInString(next) < h.MinPassword:
		return fmt.Sprintf("Choose a password of at least %d characters.", h.MinPassword)
	case len(next) > 1024:
		return "Choose a shorter password (at most 1024 bytes)."
	case next == current:
		return "Choose a password different from the current one."
	case strings.EqualFold(next, u.Username):
		return "Your password cannot be your username."
	}
	updated := *u
	updated.PasswordHash, updated.PasswordChangeRequired, updated.UpdatedAt = secrets.HashPassword(next), false, h.Now()
	if err := h.Store.UpdateUser(ctx, &updated); err != nil {
		h.Log.Error("could not store a new password", "err", err, "user", u.ID)
		return "Your password could not be saved. Try again."
	}
	if err := h.Audit.Record(ctx, audit.Event{Type: audit.TypePasswordChanged, Actor: u.ID, Subject: u.ID, Details: requestDetails(r, nil)}); err != nil {
		h.Log.Error("could not audit a password change", "err", err, "user", u.ID)
	}
	return ""
}

// consent records the user's decision for a third-party client; a refusal goes back to the client
// as access_denied.
func (h *Handler) consent(w http.ResponseWriter, r *http.Request) {
	l, u := h.postUserStep(w, r)
	if u == nil {
		return
	}
	ctx := r.Context()
	if l.p.Request == nil {
		h.stepFault(w, r, l, nil)
		return
	}
	switch r.PostFormValue("decision") {
	case "allow":
		c := &store.Consent{UserID: u.ID, ClientID: l.client.ID, Scope: l.p.Request.Scope, GrantedAt: h.Now()}
		if err := h.Store.PutConsent(ctx, c); err != nil {
			h.serverFault(w, r, err)
			return
		}
		if err := h.Audit.Record(ctx, audit.Event{Type: audit.TypeConsentGranted, Actor: u.ID, Subject: u.ID, Client: l.client.ID, Details: map[string]any{"scope": c.Scope}}); err != nil {
			h.serverFault(w, r, err)
			return
		}
		l.p.Consented = true
		h.advance(w, r, l)
	case "deny":
		if err := h.Store.FinishLoginRequest(ctx, l.lr.ID, h.Now()); err != nil && !errors.Is(err, store.ErrConflict) {
			h.serverFault(w, r, err)
			return
		}
		h.sendRefusal(w, r, refusal(l.p.Request, oauth.AccessDenied("the user did not allow client '%s' the requested access", l.client.ID)))
	default:
		h.next(w, r, l, http.StatusBadRequest, "")
	}
}

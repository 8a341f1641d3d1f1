package browser

import (
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/signet-id/signet/internal/mfa"
)

// On a phone-sized screen (360×740), a person turns on two-step verification from the account
// page: scans the QR code (or types the key), confirms a code, saves ten recovery codes, and the
// account page says it is on. On another device, signing in then asks for a code.
func TestTOTPEnrolmentAndSignIn(t *testing.T) {
	s := start(t, nil)
	s.env.CreateUserWithPassword("alice", "correct horse battery")
	phone := s.newTab("phone", 360, 740)

	phone.open(s.env.URL + "/ui/account")
	phone.at(s.env.URL + "/ui/login/")
	phone.shot("login")
	phone.fitsWidth()
	phone.signIn("alice", "correct horse battery")
	phone.at(s.env.URL + "/ui/account")
	phone.shot("account")
	phone.fitsWidth()
	phone.sees("Signed in as alice")

	phone.press(`a[href="/ui/account/totp"]`)
	phone.do("wait for the QR code", waitVisible("img.qr"))
	phone.shot("enrol")
	phone.fitsWidth()
	if w := eval[int](phone, `document.querySelector("img.qr").complete ? document.querySelector("img.qr").naturalWidth : 0`); w <= 0 {
		t.Errorf("the QR code image did not load (naturalWidth %d)", w)
	}
	shown := phone.text("code.secret")
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ReplaceAll(shown, " ", ""))
	if err != nil || len(secret) < 16 {
		t.Fatalf("the key shown, %q, is not a base32 TOTP secret: %v", shown, err)
	}
	now := time.Now()
	phone.typeInto("#code", mfa.Code(secret, now))
	phone.press(`form button[type="submit"]`)
	phone.do("wait for the recovery codes", waitVisible("ol.codes"))
	phone.shot("recovery-codes")
	phone.fitsWidth()
	codes := eval[[]string](phone, `[...document.querySelectorAll("ol.codes li")].map(li => li.innerText.trim())`)
	if len(codes) != 10 || slices.Contains(codes, "") {
		t.Errorf("recovery codes shown: %q, want 10", codes)
	}
	phone.press(`form button[type="submit"]`)
	phone.at(s.env.URL + "/ui/account")
	phone.shot("account-two-step-on")
	phone.sees("Two-step verification is on.")
	phone.sees("An authenticator app is set up.")
	phone.sees("You have 10 recovery codes left.")

	// Another device: password, then the code of the next 30-second step (the current one was
	// used, and a code is good once).
	laptop := s.newTab("laptop", 1280, 900)
	a := s.rp.authorize()
	laptop.open(a.URL)
	laptop.signIn("alice", "correct horse battery")
	laptop.do("wait for the code field", waitVisible("#code"))
	laptop.shot("second-factor")
	if focused := eval[string](laptop, "document.activeElement.id"); focused != "code" {
		t.Errorf("the second-factor page focuses %q, want the code field", focused)
	}
	laptop.typeInto("#code", mfa.Code(secret, now.Add(mfa.Period*time.Second)))
	laptop.press(`form button[type="submit"]`)
	tok := s.callback(laptop, a)
	if amr := idTokenAMR(t, tok); !slices.Contains(amr, "otp") || !slices.Contains(amr, "pwd") {
		t.Errorf("ID token amr %q after password and TOTP, want pwd and otp", amr)
	}
}

// The account page lists where the person is signed in, marks this device, and "Sign out
// everywhere else" ends the other session: that browser has to sign in again.
func TestAccountSignOutElsewhere(t *testing.T) {
	s := start(t, nil)
	s.env.CreateUserWithPassword("alice", "correct horse battery")
	here := s.newTab("here", 1280, 900)
	there := s.newTab("there", 1280, 900)
	for _, b := range []*tab{there, here} {
		b.open(s.env.URL + "/ui/account")
		b.signIn("alice", "correct horse battery")
		b.at(s.env.URL + "/ui/account")
	}
	here.shot("account")
	rows := eval[[]string](here, `[...document.querySelectorAll("ul.rows")[0].children].map(li => li.querySelector(".head").innerText)`)
	if len(rows) != 2 {
		t.Fatalf("sessions listed: %q, want two", rows)
	}
	current := 0
	for _, r := range rows {
		if !strings.HasPrefix(r, "Chrome on Linux") {
			t.Errorf("session %q: want the device named Chrome on Linux", r)
		}
		if strings.Contains(r, "This device") {
			current++
		}
	}
	if current != 1 {
		t.Errorf("sessions %q: want exactly one marked This device", rows)
	}

	here.press(`form:has(input[name="session"][value="others"]) button`)
	here.at(s.env.URL + "/ui/account")
	here.shot("signed-out-elsewhere")
	here.sees("Every other session was signed out.")
	if n := eval[int](here, `document.querySelectorAll("ul.rows")[0].children.length`); n != 1 {
		t.Errorf("after signing out elsewhere %d sessions are listed, want 1", n)
	}

	there.open(s.env.URL + "/ui/account")
	there.at(s.env.URL + "/ui/login/")
	there.shot("other-device-signed-out")
	here.open(s.env.URL + "/ui/account") // this one is still signed in
	here.at(s.env.URL + "/ui/account")
}

// response_mode=form_post: the page posts the code to the client by itself (its script runs
// under the page's CSP nonce), and without JavaScript a Continue button does the same.
func TestFormPost(t *testing.T) {
	s := start(t, nil)
	s.env.CreateUserWithPassword("alice", "correct horse battery")
	for _, js := range []bool{true, false} {
		name := "javascript"
		if !js {
			name = "no-javascript"
		}
		b := s.newTab(name, 1280, 900)
		if !js {
			b.noScript()
		}
		a := s.rp.authorize(oauth2.SetAuthURLParam("response_mode", "form_post"))
		b.open(a.URL)
		b.signIn("alice", "correct horse battery")
		if !js {
			b.do("wait for Continue", waitVisible("#form-post button"))
			b.shot("form-post-continue")
			b.sees("JavaScript is turned off")
			b.press("#form-post button")
		}
		b.do("wait for the relying party", waitVisible("#callback-ok"))
		b.shot("posted-" + name)
		if m := b.text("#method"); m != "POST" {
			t.Errorf("%s: the client got a %s, want the form POSTed", name, m)
		}
		s.callback(b, a)
	}
}

// idTokenAMR reads the amr claim of the token response's ID token (the exchange already checked
// where it came from; signature checks are the RP tests' business).
func idTokenAMR(t *testing.T, tok *oauth2.Token) []string {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("ID token %q", raw)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		AMR []string `json:"amr"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c.AMR
}

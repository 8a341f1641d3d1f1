package ui

import (
	"html/template"
	"regexp"
	"strings"
	"time"
)

var funcs = template.FuncMap{
	"when":    when,
	"iso":     iso,
	"group4":  group4,
	"qr":      qrURL,
	"appURL":  func(s string) template.URL { u, _ := appURL(s); return u },
	"methods": methodNames,
}

// when formats a time as "29 Nov 2026, 14:05 UTC"; a zero time is "".
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2 Jan 2006, 15:04 UTC")
}

// iso is a <time datetime> value.
func iso(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// group4 writes a TOTP secret in groups of four for typing by hand.
func group4(s string) string {
	s = strings.ToUpper(strings.Join(strings.Fields(s), ""))
	var b strings.Builder
	for i, r := range []rune(s) {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

var pngDataURI = regexp.MustCompile(`^data:image/png;base64,[A-Za-z0-9+/]+={0,2}$`)

// qrURL lets a PNG data URI through html/template; anything else is "" and shows no image.
func qrURL(s string) template.URL {
	if !pngDataURI.MatchString(s) {
		return ""
	}
	return template.URL(s)
}

var methodName = map[string]string{
	"pwd": "password", "otp": "authenticator code", "totp": "authenticator code", "kba": "recovery code",
	"hwk": "security key", "swk": "passkey", "sms": "text message", "rec": "recovery code", "fed": "federated sign-in",
}

// methodNames turns amr values into words: "password, authenticator code".
func methodNames(ms []string) string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		if m == "mfa" {
			continue // it says two factors were used, which the others already name
		}
		if n, ok := methodName[m]; ok {
			m = n
		}
		out = append(out, m)
	}
	return strings.Join(out, ", ")
}

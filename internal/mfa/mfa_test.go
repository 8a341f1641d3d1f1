package mfa

import (
	"bytes"
	"errors"
	"image/color"
	"image/png"
	"math"
	"net/url"
	"strings"
	"testing"
	"time"
)

// rfcSecret is the SHA1 seed of RFC 6238 Appendix B.
var rfcSecret = []byte("12345678901234567890")

func TestCodeMatchesRFC6238AppendixB(t *testing.T) {
	// The RFC's 8-digit values; a 6-digit code is the same number mod 10^6, i.e. its last 6 digits.
	for _, tc := range []struct {
		unix  int64
		eight string
	}{
		{59, "94287082"},
		{1111111109, "07081804"},
		{1111111111, "14050471"},
		{1234567890, "89005924"},
		{2000000000, "69279037"},
		{20000000000, "65353130"},
	} {
		want := tc.eight[2:]
		if got := Code(rfcSecret, time.Unix(tc.unix, 0)); got != want {
			t.Errorf("Code at %d = %q, want %q", tc.unix, got, want)
		}
	}
}

func TestVerifyAcceptsOneStepOfDriftEitherSide(t *testing.T) {
	now := time.Unix(1_800_000_015, 0) // mid-step
	nowStep := now.Unix() / 30
	for _, tc := range []struct {
		name   string
		offset time.Duration
		ok     bool
	}{
		{"two steps behind", -60 * time.Second, false},
		{"one step behind", -30 * time.Second, true},
		{"current", 0, true},
		{"one step ahead", 30 * time.Second, true},
		{"two steps ahead", 60 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := now.Add(tc.offset)
			step, err := Verify(rfcSecret, Code(rfcSecret, at), now, 0)
			if !tc.ok {
				if !errors.Is(err, ErrWrongCode) || step != 0 {
					t.Fatalf("Verify = %d, %v; want 0, ErrWrongCode", step, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if want := at.Unix() / 30; step != want {
				t.Fatalf("step = %d, want %d", step, want)
			}
			if d := step - nowStep; d < -1 || d > 1 {
				t.Fatalf("step %d is %d from now's step", step, d)
			}
		})
	}
}

func TestVerifyRefusesReplay(t *testing.T) {
	now := time.Unix(1_800_000_015, 0)
	code := Code(rfcSecret, now)
	step, err := Verify(rfcSecret, code, now, 0)
	if err != nil {
		t.Fatalf("first use: %v", err)
	}
	for _, last := range []int64{step, step + 1} {
		if got, err := Verify(rfcSecret, code, now, last); !errors.Is(err, ErrReplay) || got != 0 {
			t.Errorf("lastStep %d: Verify = %d, %v; want 0, ErrReplay", last, got, err)
		}
	}
	// The next step's code is still good after this one was used.
	next := now.Add(30 * time.Second)
	if got, err := Verify(rfcSecret, Code(rfcSecret, next), now, step); err != nil || got != step+1 {
		t.Errorf("next step after use: Verify = %d, %v; want %d, nil", got, err, step+1)
	}
	// An earlier drift step is a replay once a later step has been used.
	prev := now.Add(-30 * time.Second)
	if _, err := Verify(rfcSecret, Code(rfcSecret, prev), now, step); !errors.Is(err, ErrReplay) {
		t.Errorf("earlier step after use: err = %v, want ErrReplay", err)
	}
}

func TestVerifyMalformedAndWrong(t *testing.T) {
	now := time.Unix(1_800_000_015, 0)
	good := Code(rfcSecret, now)
	for _, in := range []string{"", "12345", "1234567", "12a456", "١٢٣٤٥٦", "１２３４５６", "-12345", "+123456", "12345\x00"} {
		if step, err := Verify(rfcSecret, in, now, 0); !errors.Is(err, ErrMalformed) || step != 0 {
			t.Errorf("Verify(%q) = %d, %v; want 0, ErrMalformed", in, step, err)
		}
	}
	for _, in := range []string{good[:3] + " " + good[3:], " " + good + "\n", good[:3] + "\t" + good[3:]} {
		if _, err := Verify(rfcSecret, in, now, 0); err != nil {
			t.Errorf("Verify(%q): %v", in, err)
		}
	}
	wrong := []byte(good)
	wrong[5] = '0' + (wrong[5]-'0'+1)%10
	if _, err := Verify(rfcSecret, string(wrong), now, 0); !errors.Is(err, ErrWrongCode) {
		t.Errorf("wrong code: err = %v, want ErrWrongCode", err)
	}
	if _, err := Verify(nil, good, now, 0); !errors.Is(err, ErrNoSecret) {
		t.Errorf("empty secret: err = %v, want ErrNoSecret", err)
	}
}

func TestEnrollment(t *testing.T) {
	e, err := NewEnrollment("Signet Example", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Secret) != 20 {
		t.Fatalf("secret is %d bytes, want 20", len(e.Secret))
	}
	if strings.Contains(e.Base32, "=") {
		t.Errorf("Base32 %q is padded", e.Base32)
	}
	if dec, err := b32.DecodeString(e.Base32); err != nil || !bytes.Equal(dec, e.Secret) {
		t.Errorf("Base32 decodes to %x, %v; want Secret %x", dec, err, e.Secret)
	}

	u, err := url.Parse(e.URI)
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "otpauth" || u.Host != "totp" {
		t.Errorf("URI %q: scheme/host %q/%q, want otpauth/totp", e.URI, u.Scheme, u.Host)
	}
	if u.Path != "/Signet Example:alice@example.com" {
		t.Errorf("label %q, want issuer:account", u.Path)
	}
	q := u.Query()
	for k, want := range map[string]string{
		"secret": e.Base32, "issuer": "Signet Example", "algorithm": "SHA1", "digits": "6", "period": "30",
	} {
		if got := q.Get(k); got != want {
			t.Errorf("URI %s = %q, want %q", k, got, want)
		}
	}

	img, err := png.Decode(bytes.NewReader(e.QRPNG))
	if err != nil {
		t.Fatalf("QR PNG: %v", err)
	}
	b := img.Bounds()
	if b.Dx() != b.Dy() || b.Dx() < 200 || b.Dx() > 320 {
		t.Fatalf("QR image is %dx%d, want square, about 256 px", b.Dx(), b.Dy())
	}
	// Quiet zone: the first dark pixel (the top-left finder pattern) is inset equally on both axes,
	// and the border row and column are white.
	first := -1
	for d := 0; d < b.Dx() && first < 0; d++ {
		if isDark(img.At(d, d)) {
			first = d
		}
	}
	if first < 4 {
		t.Fatalf("first dark pixel on the diagonal at %d: no quiet zone", first)
	}
	for i := 0; i < b.Dx(); i++ {
		if isDark(img.At(i, 0)) || isDark(img.At(0, i)) || isDark(img.At(i, b.Dy()-1)) || isDark(img.At(b.Dx()-1, i)) {
			t.Fatalf("dark pixel on the border at %d", i)
		}
	}
	if !strings.HasPrefix(e.QRDataURI(), "data:image/png;base64,iVBORw0KGgo") {
		t.Errorf("QRDataURI = %.40q…", e.QRDataURI())
	}

	// A code from the enrolled secret verifies: the pieces agree.
	now := time.Now()
	if _, err := Verify(e.Secret, Code(e.Secret, now), now, 0); err != nil {
		t.Errorf("enrolled secret: %v", err)
	}
	other, err := NewEnrollment("Signet Example", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other.Secret, e.Secret) {
		t.Error("two enrollments share a secret")
	}
}

func TestEnrollmentRefusesBadNames(t *testing.T) {
	for _, tc := range [][2]string{{"", "alice"}, {"Signet", ""}, {"Sig:net", "alice"}, {"Signet", "al:ice"}} {
		if _, err := NewEnrollment(tc[0], tc[1]); err == nil {
			t.Errorf("NewEnrollment(%q, %q) succeeded", tc[0], tc[1])
		}
	}
}

func isDark(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return r+g+b < 3*0x8000
}

func TestRecoveryCodes(t *testing.T) {
	codes := NewRecoveryCodes()
	if len(codes) != 10 {
		t.Fatalf("%d codes, want 10", len(codes))
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if seen[c] {
			t.Errorf("duplicate code %q", c)
		}
		seen[c] = true
		if len(c) != 11 || c[5] != '-' {
			t.Errorf("code %q is not xxxxx-xxxxx", c)
		}
		for _, r := range strings.ReplaceAll(c, "-", "") {
			if !strings.ContainsRune(RecoveryAlphabet, r) {
				t.Errorf("code %q has %q outside the alphabet", c, r)
			}
		}
		norm, ok := NormalizeRecoveryCode(c)
		if !ok || norm != strings.ReplaceAll(c, "-", "") {
			t.Errorf("Normalize(%q) = %q, %v", c, norm, ok)
		}
		loose := " " + strings.ToUpper(c[:3]) + " " + c[3:5] + "--" + c[6:] + " "
		if again, ok := NormalizeRecoveryCode(loose); !ok || again != norm {
			t.Errorf("Normalize(%q) = %q, %v; want %q", loose, again, ok, norm)
		}
		if !LooksLikeRecoveryCode(c) || !LooksLikeRecoveryCode(loose) {
			t.Errorf("LooksLikeRecoveryCode(%q) false", c)
		}
	}
	if other := NewRecoveryCodes(); other[0] == codes[0] {
		t.Error("two sets of recovery codes start with the same code")
	}
}

func TestRecoveryAlphabetIsUnambiguous(t *testing.T) {
	for _, r := range "0Oo1lIi" {
		if strings.ContainsRune(RecoveryAlphabet, r) {
			t.Errorf("alphabet contains ambiguous %q", r)
		}
	}
	seen := map[rune]bool{}
	for _, r := range RecoveryAlphabet {
		if seen[r] {
			t.Errorf("alphabet repeats %q", r)
		}
		seen[r] = true
	}
}

func TestRecoveryCodeEntropy(t *testing.T) {
	bits := float64(RecoveryCodeLength) * math.Log2(float64(len(RecoveryAlphabet)))
	if bits < 45 {
		t.Fatalf("a recovery code has %.1f bits (%d chars from %d), want >= 45", bits, RecoveryCodeLength, len(RecoveryAlphabet))
	}
	if math.Abs(bits-RecoveryCodeBits) > 1e-9 {
		t.Errorf("RecoveryCodeBits = %.2f, computed %.2f", RecoveryCodeBits, bits)
	}
}

func TestRecoveryCodeRecognition(t *testing.T) {
	for _, in := range []string{
		"123456", "123 456", Code(rfcSecret, time.Unix(59, 0)), "", "abcde-fghj", "abcde-fghjkm",
		"abcde-fghj0", "abcde-fghjl", "abcde-fghjO", "abcde-fghj\u212a",
	} {
		if LooksLikeRecoveryCode(in) {
			t.Errorf("LooksLikeRecoveryCode(%q) true", in)
		}
	}
	for _, in := range []string{"abcde-fghjk", "ABCDEFGHJK", "abcde fghjk", "a-b-c-d-e-f-g-h-j-k"} {
		if got, ok := NormalizeRecoveryCode(in); !ok || got != "abcdefghjk" {
			t.Errorf("Normalize(%q) = %q, %v", in, got, ok)
		}
	}
}

func FuzzTOTPVerify(f *testing.F) {
	for _, s := range []string{"", "123456", "123 456", "12a456", "١٢٣٤٥٦", "1234567", " 287082 "} {
		f.Add(s, int64(59), int64(0))
	}
	f.Add("287082", int64(59), int64(1))
	f.Fuzz(func(t *testing.T, code string, unix, lastStep int64) {
		now := time.Unix(unix, 0)
		step, err := Verify(rfcSecret, code, now, lastStep)
		switch {
		case errors.Is(err, ErrMalformed):
			if step != 0 || LooksLikeTOTPCode(code) {
				t.Fatalf("malformed %q gave step %d (looks like a code: %v)", code, step, LooksLikeTOTPCode(code))
			}
		case err == nil:
			if !LooksLikeTOTPCode(code) || step <= lastStep {
				t.Fatalf("accepted %q at step %d with lastStep %d", code, step, lastStep)
			}
			if d := step - Step(now); d < -1 || d > 1 {
				t.Fatalf("accepted step %d, %d from now", step, d)
			}
		default:
			if step != 0 {
				t.Fatalf("error %v with step %d", err, step)
			}
		}
		_ = LooksLikeRecoveryCode(code)
	})
}

// TestEnrollmentForShowsTheSameSecret: a reloaded enrolment page shows what the app may already
// have scanned, not a new secret.
func TestEnrollmentForShowsTheSameSecret(t *testing.T) {
	e, err := NewEnrollment("Signet", "alice")
	if err != nil {
		t.Fatal(err)
	}
	again, err := EnrollmentFor(e.Secret, "Signet", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if again.URI != e.URI || again.Base32 != e.Base32 || !bytes.Equal(again.QRPNG, e.QRPNG) {
		t.Fatalf("re-shown enrolment differs:\n%s\n%s", e.URI, again.URI)
	}
	if _, err := EnrollmentFor(nil, "Signet", "alice"); err == nil {
		t.Fatal("an empty secret was accepted")
	}
}

package authorize

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/store"
)

// matchRedirectURI checks redirect_uri against the client's registered URIs. The comparison is an
// exact string comparison (OAuth 2.0 Security BCP §4.1.3): no case folding, no path normalisation,
// no prefix matching, so /cb/../evil, an added query, another host or userinfo never match.
//
// The one exception is RFC 8252 §7.3: a native client's loopback redirect URI (http with the
// literal host 127.0.0.1 or [::1]) matches with any port, because the app picks a free port at run
// time. Everything else (scheme, host literal, path, query) must still be equal. "localhost" is not
// a loopback literal (RFC 8252 §8.3: it may resolve elsewhere), so localhost URIs match only exactly.
func matchRedirectURI(c *store.Client, uri string) *oauth.Error {
	matched := ""
	for _, reg := range c.RedirectURIs {
		if uri == reg || c.Type == store.ClientNative && loopbackMatch(reg, uri) {
			matched = reg
			break
		}
	}
	if matched == "" {
		if u, err := url.Parse(uri); err == nil && u.Scheme == "http" && strings.EqualFold(u.Hostname(), "localhost") {
			return oauth.InvalidRequest("redirect_uri '%s' is not registered for client '%s'; localhost URIs must match exactly, port included: register it, or use http://127.0.0.1, whose port may vary (RFC 8252 section 7.3)", clip(uri), clip(c.ID))
		}
		return oauth.InvalidRequest("redirect_uri '%s' is not registered for client '%s'; it must equal a registered redirect URI exactly (only a native client's loopback URI may differ, in its port)", clip(uri), clip(c.ID))
	}
	// The registration is checked too: an operator may have stored a URI that no response can be
	// sent to safely. The request's URI differs from it at most in a loopback port.
	if reason := unusable(matched); reason != "" {
		return oauth.InvalidRequest("the registered redirect URI '%s' of client '%s' cannot be used: %s; an operator must correct the client's registration", clip(matched), clip(c.ID), reason)
	}
	return nil
}

// unusable says why a registered redirect URI cannot receive responses ("" when it can): it must
// be absolute, without a fragment (RFC 6749 §3.1.2) or userinfo, with a host when it is http(s),
// and not a scheme that runs or reads something in the browser.
func unusable(reg string) string {
	u, err := url.Parse(reg)
	switch {
	case err != nil || !u.IsAbs():
		return "it is not an absolute URI"
	case strings.Contains(reg, "#"):
		return "it has a fragment"
	case u.User != nil:
		return "it has userinfo"
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host == "":
		return "it has no host"
	}
	switch strings.ToLower(u.Scheme) {
	case "javascript", "data", "vbscript", "file", "blob", "about":
		return "its scheme is not allowed"
	}
	return ""
}

// loopbackMatch reports whether uri equals the registered loopback URI reg except for the port.
// It compares strings split at fixed positions rather than parsed URLs, so a parser's leniency
// (userinfo, backslashes, odd ports) cannot make two different URIs look alike.
func loopbackMatch(reg, uri string) bool {
	rh, rest, ok := splitLoopback(reg)
	if !ok {
		return false
	}
	uh, urest, ok := splitLoopback(uri)
	return ok && uh == rh && urest == rest
}

// splitLoopback splits "http://" host [":" port] rest, where host is 127.0.0.1 or [::1], port is
// 1-65535 in decimal, and rest is empty or starts with '/' or '?' and has no fragment.
func splitLoopback(s string) (host, rest string, ok bool) {
	s, ok = strings.CutPrefix(s, "http://")
	if !ok {
		return "", "", false
	}
	for _, h := range [...]string{"127.0.0.1", "[::1]"} {
		if after, found := strings.CutPrefix(s, h); found {
			host, s = h, after
			break
		}
	}
	if host == "" {
		return "", "", false
	}
	if after, found := strings.CutPrefix(s, ":"); found {
		n := 0
		for n < len(after) && n < 6 && after[n] >= '0' && after[n] <= '9' {
			n++
		}
		if n == 0 || n > 5 || after[0] == '0' {
			return "", "", false
		}
		port := 0
		for _, c := range after[:n] {
			port = port*10 + int(c-'0')
		}
		if port > 65535 {
			return "", "", false
		}
		s = after[n:]
	}
	if s != "" && s[0] != '/' && s[0] != '?' || strings.Contains(s, "#") {
		return "", "", false
	}
	return host, s, true
}

// CheckRedirectURI says why uri cannot be registered as a redirect URI of a client of clientType
// (nil when it can). It refuses what the authorization endpoint could never send a response to
// (see unusable) and, by type: web and spa clients receive responses at https URIs, or at http on a
// loopback host (127.0.0.1, [::1] or localhost) while in development; native clients at a
// private-use scheme (com.example.app:/cb), an http loopback URI (RFC 8252 §7.3; with 127.0.0.1 or
// [::1] any port matches) or a claimed https URI (§7.2); api clients sign no one in.
func CheckRedirectURI(clientType, uri string) error {
	if reason := unusable(uri); reason != "" {
		return fmt.Errorf("%s", reason)
	}
	u, _ := url.Parse(uri) // unusable parsed it
	scheme := strings.ToLower(u.Scheme)
	loopback := scheme == "http" && (u.Hostname() == "127.0.0.1" || u.Hostname() == "::1" || strings.EqualFold(u.Hostname(), "localhost"))
	switch clientType {
	case store.ClientWeb, store.ClientSPA:
		if scheme != "https" && !loopback {
			return fmt.Errorf("a %s client's redirect URI must use https (or http on 127.0.0.1, [::1] or localhost in development)", clientType)
		}
	case store.ClientNative:
		if scheme == "http" && !loopback {
			return errors.New("a native client's http redirect URI must be a loopback one, http://127.0.0.1 or http://[::1] (RFC 8252 section 7.3); otherwise use a private-use scheme such as com.example.app:/callback")
		}
	default:
		return fmt.Errorf("a client of type %q signs no one in and has no redirect URIs: use --type web, spa or native", clientType)
	}
	return nil
}

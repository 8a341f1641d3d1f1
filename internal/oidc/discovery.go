// Package oidc serves the OpenID Connect and RFC 8414 metadata: the discovery document and the JWKS.
// It lists only what Signet really supports, so clients never try a feature that is not there.
package oidc

import (
	"encoding/json"
	"net/http"

	"github.com/signet-id/signet/internal/oauth"
)

// Well-known paths.
const (
	DiscoveryPath = "/.well-known/openid-configuration"
	RFC8414Path   = "/.well-known/oauth-authorization-server"
)

// Discovery serves the provider metadata.
type Discovery struct {
	Issuer string
	// GrantTypes lists the grant types the token endpoint serves.
	GrantTypes []string
	// SigningAlgs returns the algorithms Signet signs tokens with now (active keys).
	SigningAlgs func() []string
	// IntrospectionAlg signs RFC 9701 introspection responses.
	IntrospectionAlg string
	// SubjectTokenTypes and RequestedTokenTypes describe the token-exchange grant.
	SubjectTokenTypes, RequestedTokenTypes []string
	// SignIn lists the authorization endpoint and what sign-in supports; ACRValues the
	// authentication classes it asserts.
	SignIn    bool
	ACRValues []string
	// BackchannelLogout: clients may register a back-channel logout URI.
	BackchannelLogout bool
}

// Paths of the sign-in endpoints (served by the signin package; listed here).
const (
	AuthorizePath  = "/oauth/v2/authorize"
	EndSessionPath = "/oidc/v1/end_session"
)

// assertionAlgs are the algorithms accepted on client assertions (key files).
var assertionAlgs = []string{"RS256", "ES256", "EdDSA"}

// Metadata returns the discovery document.
func (d *Discovery) Metadata() map[string]any {
	authMethods := []string{"client_secret_basic", "client_secret_post", "private_key_jwt"}
	algs := d.SigningAlgs()
	m := map[string]any{
		"issuer":                                                   d.Issuer,
		"token_endpoint":                                           d.Issuer + oauth.TokenPath,
		"introspection_endpoint":                                   d.Issuer + oauth.IntrospectPath,
		"revocation_endpoint":                                      d.Issuer + oauth.RevokePath,
		"jwks_uri":                                                 d.Issuer + oauth.KeysPath,
		"userinfo_endpoint":                                        d.Issuer + UserinfoPath,
		"grant_types_supported":                                    d.GrantTypes,
		"response_types_supported":                                 []string{},
		"subject_types_supported":                                  []string{"public"},
		"id_token_signing_alg_values_supported":                    algs,
		"token_endpoint_auth_methods_supported":                    append(authMethods, "none"),
		"token_endpoint_auth_signing_alg_values_supported":         assertionAlgs,
		"introspection_endpoint_auth_methods_supported":            authMethods,
		"introspection_endpoint_auth_signing_alg_values_supported": assertionAlgs,
		"introspection_signing_alg_values_supported":               []string{d.IntrospectionAlg},
		"revocation_endpoint_auth_methods_supported":               authMethods,
		"revocation_endpoint_auth_signing_alg_values_supported":    assertionAlgs,
		"access_token_signing_alg_values_supported":                algs,
	}
	if d.SignIn {
		m["authorization_endpoint"] = d.Issuer + AuthorizePath
		m["end_session_endpoint"] = d.Issuer + EndSessionPath
		m["response_types_supported"] = []string{"code"}
		m["response_modes_supported"] = []string{"query", "form_post"}
		m["scopes_supported"] = []string{"openid", "profile", "email", "roles", "offline_access"}
		m["claims_supported"] = []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "at_hash", "sid",
			"preferred_username", "name", "email", "roles"}
		m["code_challenge_methods_supported"] = []string{"S256"}
		m["prompt_values_supported"] = []string{"none", "login", "consent", "select_account"}
		m["acr_values_supported"] = d.ACRValues
		m["authorization_response_iss_parameter_supported"] = true
		m["claims_parameter_supported"] = false
		m["request_parameter_supported"] = false
		m["request_uri_parameter_supported"] = false
		m["frontchannel_logout_supported"] = false
		m["backchannel_logout_supported"] = d.BackchannelLogout
		m["backchannel_logout_session_supported"] = d.BackchannelLogout
	}
	if len(d.SubjectTokenTypes) > 0 {
		m["token_exchange_subject_token_types_supported"] = d.SubjectTokenTypes
		m["token_exchange_requested_token_types_supported"] = d.RequestedTokenTypes
	}
	return m
}

// ServeHTTP writes the discovery document.
func (d *Discovery) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := json.Marshal(d.Metadata())
	if err != nil {
		oauth.WriteError(w, oauth.ServerError(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(b)
}

// JWKS serves the issuer's public signing keys.
type JWKS struct{ Keys func() []byte }

func (j JWKS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(j.Keys())
}

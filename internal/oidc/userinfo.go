package oidc

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/signet-id/signet/internal/directory"
	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/tokens"
)

// UserinfoPath is the OIDC userinfo endpoint (ZITADEL's path).
const UserinfoPath = "/oidc/v1/userinfo"

// Userinfo serves OIDC Core §5.3: claims about the token's subject, including the act chain of
// delegated and impersonation tokens, so applications can show who is really acting.
type Userinfo struct {
	Tokens *tokens.Service
	Dir    *directory.Directory
}

func (u *Userinfo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok && r.Method == http.MethodPost {
		if err := r.ParseForm(); err == nil {
			raw, ok = r.PostForm.Get("access_token"), r.PostForm.Get("access_token") != ""
		}
	}
	if !ok || raw == "" {
		e := oauth.InvalidToken("send the access token as Authorization: Bearer <token>")
		e.Challenge = `Bearer realm="signet"`
		oauth.WriteError(w, e)
		return
	}
	a, inactive, err := u.Tokens.Resolve(r.Context(), strings.TrimSpace(raw))
	if err != nil {
		oauth.WriteError(w, oauth.ServerError(err))
		return
	}
	if inactive != nil {
		oauth.WriteError(w, oauth.InvalidToken("the access token is not active"))
		return
	}
	claims := map[string]any{"sub": a.Subject}
	if a.Act != nil {
		claims["act"] = a.Act
	}
	if a.Exchange != nil {
		claims["signet_exchange"] = a.Exchange
	}
	if a.SubjectKind == store.KindUser {
		if user, err := u.Dir.User(r.Context(), a.Subject); err == nil {
			p := tokens.ProfileOf(user, a.Scope)
			for name, v := range map[string]string{"preferred_username": p.PreferredUsername, "name": p.Name, "email": p.Email} {
				if v != "" {
					claims[name] = v
				}
			}
			if p.Email != "" {
				claims["email_verified"] = false // Signet does not verify addresses (yet): say so
			}
			if slices.Contains(a.Scope, "roles") {
				claims["roles"] = user.Roles
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(claims)
}

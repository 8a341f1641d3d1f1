// Package admin serves the admin REST API under /admin/v1/: JSON over net/http, authenticated by a
// Bearer access token whose subject holds the signet:admin permission. It exposes what the CLI
// does, through the same packages, so both follow the same rules and both are audited.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/directory"
	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/manage"
	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/tokens"
)

// Prefix is where the API lives.
const Prefix = "/admin/v1/"

// API serves the admin endpoints.
type API struct {
	Issuer   string
	Store    store.Store
	Tokens   *tokens.Service
	Dir      *directory.Directory
	Policy   *exchange.Policy
	Sessions *exchange.Sessions
	Audit    *audit.Log
	AuditKey []byte // verifies the audit chain (secrets.Keys.AuditKey)
	// OAuth answers policy checks with the token endpoint's own decision.
	OAuth *oauth.Handler
}

// principal is the authenticated administrator.
type principal struct {
	kind store.PrincipalKind
	id   string
}

func (p principal) String() string { return string(p.kind) + ":" + p.id }

// handler is an admin endpoint: it gets the administrator and returns a value to render or an error.
type handler func(r *http.Request, who principal) (any, error)

// Routes registers every endpoint on mux.
func (a *API) Routes(mux *http.ServeMux, wrap func(name string, h http.Handler) http.Handler) {
	for pattern, h := range map[string]handler{
		"GET /admin/v1/roles":                    a.listRoles,
		"POST /admin/v1/roles":                   a.createRole,
		"DELETE /admin/v1/roles/{name}":          a.deleteRole,
		"GET /admin/v1/policies":                 a.listPolicies,
		"PUT /admin/v1/policies/{name}":          a.putPolicy,
		"DELETE /admin/v1/policies/{name}":       a.deletePolicy,
		"POST /admin/v1/policies/check":          a.checkPolicy,
		"GET /admin/v1/impersonations":           a.listSessions,
		"POST /admin/v1/impersonations/{id}/end": a.endSession,
		"POST /admin/v1/impersonations/end":      a.endSessions,
		"POST /admin/v1/impersonation/disable":   a.killSwitch(true),
		"POST /admin/v1/impersonation/enable":    a.killSwitch(false),
		"GET /admin/v1/audit":                    a.listAudit,
		"GET /admin/v1/audit/verify":             a.verifyAudit,
	} {
		mux.Handle(pattern, wrap("admin", a.serve(h)))
	}
}

func (a *API) serve(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, err := a.authenticate(r)
		if err != nil {
			oauth.WriteError(w, err)
			return
		}
		v, err := h(r, who)
		if err != nil {
			var ref *exchange.Refusal
			if errors.As(err, &ref) {
				err = &oauth.Error{Code: ref.Code, Status: http.StatusBadRequest, Description: ref.Description}
			}
			var refused *manage.Refused
			if errors.As(err, &refused) {
				err = &oauth.Error{Code: oauth.CodeInvalidRequest, Status: http.StatusBadRequest, Description: refused.Reason}
				if refused.Conflict {
					err = &oauth.Error{Code: "conflict", Status: http.StatusConflict, Description: refused.Reason}
				}
			}
			var invalid *exchange.InvalidRule
			if errors.As(err, &invalid) {
				err = oauth.InvalidRequest("invalid rule: %s", invalid.Reason)
			}
			if errors.Is(err, store.ErrNotFound) {
				err = &oauth.Error{Code: "not_found", Status: http.StatusNotFound, Description: "no such object: " + err.Error()}
			}
			oauth.WriteError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(v)
	})
}

// authenticate accepts a Bearer access token issued for the admin API's audience (asked for
// explicitly with audience or resource = <issuer>/admin/v1) whose subject holds signet:admin now and
// that no one obtained by exchange. A token issued for any other API is refused, whoever its
// subject: an API that receives an administrator's token cannot administer Signet with it.
func (a *API) authenticate(r *http.Request) (principal, error) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return principal{}, oauth.InvalidToken("the admin API needs a Bearer access token issued for audience %s to a user, service account or client with the signet:admin permission", a.audience())
	}
	at, inactive, err := a.Tokens.Resolve(r.Context(), strings.TrimSpace(raw))
	if err != nil {
		return principal{}, oauth.ServerError(err)
	}
	if inactive != nil {
		return principal{}, oauth.InvalidToken("the Bearer token is not active; get a new access token")
	}
	if at.Act != nil || len(at.Lineage) > 0 {
		// Down-scoped tokens included: the admin API takes only tokens issued to the administrator
		// directly, never anything derived by exchange.
		return principal{}, oauth.AccessDenied("tokens obtained by token exchange cannot use the admin API")
	}
	if !at.HasAudience(a.audience()) {
		return principal{}, oauth.InvalidToken("the Bearer token was not issued for the admin API: request it with audience=%s (or resource=%s), see docs/operations.md", a.audience(), a.audience())
	}
	ok, err = oauth.SubjectPermitted(r.Context(), a.Dir, at.SubjectKind, at.Subject, directory.PermAdmin)
	if errors.Is(err, exchange.ErrNoSuchParty) {
		return principal{}, oauth.InvalidToken("the Bearer token's subject no longer exists")
	}
	if err != nil {
		return principal{}, oauth.ServerError(err)
	}
	if !ok {
		return principal{}, oauth.AccessDenied("%s %q lacks the signet:admin permission (grant the admin role with `signet role grant admin`)", at.SubjectKind, at.Subject)
	}
	return principal{kind: at.SubjectKind, id: at.Subject}, nil
}

func (a *API) audience() string { return oauth.AdminAudience(a.Issuer) }

// decode reads a JSON body strictly.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return oauth.InvalidRequest("the body must be a JSON object of the documented shape: %s", err.Error())
	}
	return nil
}

// roleBody is the body of POST /admin/v1/roles.
type roleBody struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Permissions []string `json:"permissions"`
}

func (a *API) roles() *manage.Roles {
	return &manage.Roles{Store: a.Store, Policy: a.Policy, Audit: a.Audit}
}

func (a *API) listRoles(r *http.Request, _ principal) (any, error) {
	list, err := a.Store.ListRoles(r.Context())
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(list))
	for _, role := range list {
		perms := role.Permissions
		if perms == nil {
			perms = []string{}
		}
		out = append(out, map[string]any{"name": role.Name, "description": role.Description, "permissions": perms, "built_in": role.BuiltIn})
	}
	return map[string]any{"roles": out}, nil
}

func (a *API) createRole(r *http.Request, who principal) (any, error) {
	var in roleBody
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	role, err := a.roles().Create(r.Context(), who.String(), store.Role{Name: in.Name, Description: in.Description, Permissions: in.Permissions})
	if err != nil {
		return nil, err
	}
	return map[string]any{"name": role.Name, "description": role.Description, "permissions": role.Permissions, "built_in": false}, nil
}

func (a *API) deleteRole(r *http.Request, who principal) (any, error) {
	name := r.PathValue("name")
	return map[string]string{"deleted": name}, a.roles().Delete(r.Context(), who.String(), name)
}

func (a *API) listPolicies(r *http.Request, _ principal) (any, error) {
	rules, err := a.Policy.Rules(r.Context())
	if rules == nil {
		rules = []exchange.Rule{}
	}
	return map[string]any{"rules": rules}, err
}

func (a *API) putPolicy(r *http.Request, who principal) (any, error) {
	var rule exchange.Rule
	if err := decode(r, &rule); err != nil {
		return nil, err
	}
	if rule.Name == "" {
		rule.Name = r.PathValue("name")
	}
	if rule.Name != r.PathValue("name") {
		return nil, oauth.InvalidRequest("the rule's name %q differs from the name in the path %q", rule.Name, r.PathValue("name"))
	}
	if err := a.Policy.Check(r.Context(), rule); err != nil {
		return nil, err
	}
	if err := a.Audit.Record(r.Context(), audit.Event{Type: audit.TypePolicyChanged, Actor: who.String(), Details: map[string]any{"action": "put", "rule": rule}}); err != nil {
		return nil, oauth.ServerError(err)
	}
	return rule, a.Policy.Put(r.Context(), rule)
}

func (a *API) deletePolicy(r *http.Request, who principal) (any, error) {
	name := r.PathValue("name")
	if err := a.Audit.Record(r.Context(), audit.Event{Type: audit.TypePolicyChanged, Actor: who.String(), Details: map[string]any{"action": "remove", "rule": name}}); err != nil {
		return nil, oauth.ServerError(err)
	}
	return map[string]string{"removed": name}, a.Policy.Remove(r.Context(), name)
}

// checkRequest is the body of POST /admin/v1/policies/check: the facts of an exchange, by ID.
type checkRequest struct {
	Actor        string   `json:"actor"`
	Subject      string   `json:"subject"`
	Client       string   `json:"client"` // the requesting client's ID (or a service account's)
	Audiences    []string `json:"audiences"`
	Scope        []string `json:"scope"`
	ActorScope   []string `json:"actor_scope"`
	SubjectScope []string `json:"subject_scope"`
	Reason       string   `json:"reason"`
	// RequestedTokenType is the requested_token_type (empty: an access token).
	RequestedTokenType string `json:"requested_token_type"`
	// SubjectByUserID asks about an exchange naming the subject by user ID (impersonation).
	SubjectByUserID bool `json:"subject_by_user_id"`
}

// checkPolicy answers with the token endpoint's own decision (oauth.Handler.CheckExchange): a
// refusal the endpoint would send is {"allowed": false, "error", "description"}.
func (a *API) checkPolicy(r *http.Request, _ principal) (any, error) {
	var in checkRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	ctx := r.Context()
	actor, err := a.party(ctx, in.Actor)
	if err != nil {
		return nil, err
	}
	subject, err := a.party(ctx, in.Subject)
	if err != nil {
		return nil, err
	}
	check := exchange.Check{Actor: actor, Subject: subject, Audiences: in.Audiences, Scope: in.Scope, ActorScope: in.ActorScope,
		SubjectScope: in.SubjectScope, Reason: in.Reason, SubjectByUserID: in.SubjectByUserID}
	req, d, err := a.OAuth.CheckExchange(ctx, in.Client, check, in.RequestedTokenType)
	if err == nil {
		answer := map[string]any{"allowed": true, "mode": req.Mode, "rule": d.Rule, "scope": d.Scope, "audience": d.Audience, "ttl_seconds": int(d.ExpiresAt.Sub(req.Now).Seconds())}
		if d.ActorMFA > 0 {
			// The check assumed a fresh second factor; the token endpoint will require one this recent.
			answer["require_actor_mfa"] = d.ActorMFA.String()
		}
		return answer, nil
	}
	if errors.Is(err, oauth.ErrUnknownCaller) {
		return nil, oauth.InvalidRequest("no client or service account with ID %q", in.Client)
	}
	var oe *oauth.Error
	if !errors.As(err, &oe) || oe.Code == oauth.CodeServerError {
		return nil, err
	}
	answer := map[string]any{"allowed": false, "mode": req.Mode, "error": oe.Code, "description": oe.Description}
	var ref *exchange.Refusal
	if errors.As(oe.Cause, &ref) {
		answer["rule"] = ref.Rule
	}
	return answer, nil
}

func (a *API) party(ctx context.Context, id string) (exchange.Party, error) {
	p, err := exchange.PartyByID(ctx, a.Dir, id)
	if errors.Is(err, exchange.ErrNoSuchParty) || (err == nil && p.Kind == string(store.KindClient)) {
		return exchange.Party{}, oauth.InvalidRequest("no user or service account with ID %q", id)
	}
	if err != nil {
		return exchange.Party{}, oauth.ServerError(err)
	}
	return p, nil
}

func (a *API) listSessions(r *http.Request, _ principal) (any, error) {
	at := time.Now()
	if r.URL.Query().Get("all") == "true" {
		at = time.Time{}
	}
	xs, err := a.Store.ListExchangeSessions(r.Context(), at)
	if err != nil {
		return nil, err
	}
	if xs == nil {
		xs = []store.ExchangeSession{}
	}
	disabled, err := a.Sessions.ImpersonationDisabled(r.Context())
	return map[string]any{"impersonation_disabled": disabled, "sessions": xs}, err
}

type endRequest struct {
	Actor   string `json:"actor"`
	Subject string `json:"subject"`
	Reason  string `json:"reason"`
}

func (a *API) endSession(r *http.Request, who principal) (any, error) {
	var in endRequest
	if r.ContentLength > 0 {
		if err := decode(r, &in); err != nil {
			return nil, err
		}
	}
	if err := a.Sessions.End(r.Context(), r.PathValue("id"), who.String(), in.Reason); err != nil {
		if strings.Contains(err.Error(), "no exchange session") {
			return nil, &oauth.Error{Code: "not_found", Status: http.StatusNotFound, Description: err.Error()}
		}
		return nil, err
	}
	return map[string]int{"ended": 1}, nil
}

func (a *API) endSessions(r *http.Request, who principal) (any, error) {
	var in endRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	var n int
	var err error
	switch {
	case in.Actor != "" && in.Subject == "":
		n, err = a.Sessions.EndActor(r.Context(), in.Actor, who.String(), in.Reason)
	case in.Subject != "" && in.Actor == "":
		n, err = a.Sessions.EndSubject(r.Context(), in.Subject, who.String(), in.Reason)
	default:
		return nil, oauth.InvalidRequest("send exactly one of actor or subject")
	}
	return map[string]int{"ended": n}, err
}

func (a *API) killSwitch(disable bool) handler {
	return func(r *http.Request, who principal) (any, error) {
		var in endRequest
		if r.ContentLength > 0 {
			if err := decode(r, &in); err != nil {
				return nil, err
			}
		}
		var err error
		if disable {
			err = a.Sessions.Disable(r.Context(), who.String(), in.Reason)
		} else {
			err = a.Sessions.Enable(r.Context(), who.String(), in.Reason)
		}
		return map[string]bool{"impersonation_disabled": disable}, err
	}
}

func (a *API) listAudit(r *http.Request, _ principal) (any, error) {
	q := r.URL.Query()
	f := store.AuditFilter{Actor: q.Get("actor"), Subject: q.Get("subject"), Type: q.Get("type"), Limit: 1000}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return nil, oauth.InvalidRequest("since must be an RFC 3339 time, e.g. 2026-11-01T00:00:00Z")
		}
		f.Since = t
	}
	events, err := a.Store.ListAudit(r.Context(), f)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(events))
	for _, e := range events {
		out = append(out, map[string]any{"seq": e.Seq, "at": e.At, "type": e.Type, "actor": e.Actor, "subject": e.Subject,
			"client": e.Client, "details": json.RawMessage(e.Details), "hash": fmt.Sprintf("%x", e.Hash)})
	}
	return map[string]any{"events": out}, nil
}

func (a *API) verifyAudit(r *http.Request, _ principal) (any, error) {
	return audit.Verify(r.Context(), a.Store, a.AuditKey)
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/server"
	"github.com/signet-id/signet/internal/store"
)

func policyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Manage token-exchange rules (who may act as or for whom)"}
	cmd.AddCommand(policyAddCmd(), policyListCmd(), policyRemoveCmd(), policyCheckCmd())
	return cmd
}

// operator names who ran a command, for the audit log.
// recordChange audits an operator's change before it is applied: if the event cannot be written,
// the change is not made.
func recordChange(ctx context.Context, s *server.Server, typ, subject string, details map[string]any) error {
	if err := s.Audit.Record(ctx, audit.Event{Type: typ, Actor: operator(), Subject: subject, Details: details}); err != nil {
		return fmt.Errorf("the change was not made: %w", err)
	}
	return nil
}

func operator() string {
	if u := os.Getenv("USER"); u != "" {
		return "cli:" + u
	}
	return "cli"
}

func policyAddCmd() *cobra.Command {
	var r exchange.Rule
	var ttl, refreshTTL, actorMFA time.Duration
	var actorUsers, actorRoles, actorSAs, actorClients []string
	var subjectUsers, subjectRoles, excludeUsers, excludeRoles []string
	cmd := &cobra.Command{
		Use:   "add --name NAME --mode impersonation|delegation …",
		Short: "Add or replace a rule (validated; audited)",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			r.Actors = exchange.Selector{Users: actorUsers, Roles: actorRoles, ServiceAccounts: actorSAs, Clients: actorClients}
			r.Subjects = exchange.Subjects{Users: subjectUsers, Roles: subjectRoles, ExcludeUsers: excludeUsers, ExcludeRoles: excludeRoles}
			r.MaxTTL, r.RefreshTTL, r.RequireActorMFA = exchange.Duration(ttl), exchange.Duration(refreshTTL), exchange.Duration(actorMFA)
			ctx := cmd.Context()
			if err := s.Policy.Check(ctx, r); err != nil {
				return err
			}
			body, _ := json.Marshal(r)
			if err := recordChange(ctx, s, audit.TypePolicyChanged, "", map[string]any{"action": "put", "rule": json.RawMessage(body)}); err != nil {
				return err
			}
			if err := s.Policy.Put(ctx, r); err != nil {
				return err
			}
			return output(cmd, r, func(w io.Writer) { fmt.Fprintf(w, "Saved rule %q (%s)\n", r.Name, r.Mode) })
		}),
	}
	f := cmd.Flags()
	f.StringVar(&r.Name, "name", "", "rule name (required)")
	f.StringVar(&r.Mode, "mode", "", "impersonation or delegation (required)")
	f.StringSliceVar(&actorUsers, "actor-user", nil, "user (ID or username) who may act")
	f.StringSliceVar(&actorRoles, "actor-role", nil, "role whose holders may act")
	f.StringSliceVar(&actorSAs, "actor-serviceaccount", nil, "service account (ID or name) that may act")
	f.StringSliceVar(&actorClients, "actor-client", nil, "client that may act (its own token as actor)")
	f.StringSliceVar(&subjectUsers, "subject-user", nil, `user (ID or username) who may be acted for; "*" for everyone`)
	f.StringSliceVar(&subjectRoles, "subject-role", nil, "role whose holders may be acted for")
	f.StringSliceVar(&excludeUsers, "exclude-user", nil, "user never acted for")
	f.StringSliceVar(&excludeRoles, "exclude-role", nil, "role whose holders are never acted for")
	f.StringSliceVar(&r.Clients, "client", nil, "client that may request (required for public clients)")
	f.StringSliceVar(&r.ActorTokenClients, "actor-token-client", nil, "client whose actor tokens a confidential requester may present besides its own (default: only its own)")
	f.StringSliceVar(&r.Audiences, "audience", nil, "audience (API client ID) the new token may have (required)")
	f.StringSliceVar(&r.Scopes, "scope", nil, "scope ceiling (repeatable)")
	f.DurationVar(&ttl, "max-ttl", 0, "lifetime cap (default 15m for impersonation, 1h for delegation; at most 1h)")
	f.BoolVar(&r.RequireReason, "require-reason", false, "refuse requests without a reason")
	f.BoolVar(&r.AllowRefresh, "allow-refresh", false, "allow requested_token_type refresh_token: the session continues until --refresh-ttl")
	f.DurationVar(&refreshTTL, "refresh-ttl", 0, "how long a session with refresh tokens lasts (default 1h for impersonation, 8h for delegation; at most 24h)")
	f.DurationVar(&actorMFA, "require-actor-mfa", 0, "impersonate only with an actor token from a sign-in that passed a second factor within this window (e.g. 15m; at most 24h)")
	f.BoolVar(&r.NotifySubject, "notify-subject", false, "send a signed event to the server's --webhook-url when a session opens under this rule")
	f.BoolVar(&r.Disabled, "disabled", false, "store the rule disabled")
	return cmd
}

func policyListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the rules in force (stored and from the policy file)",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			rules, err := s.Policy.Rules(cmd.Context())
			if err != nil {
				return err
			}
			if rules == nil {
				rules = []exchange.Rule{}
			}
			var rows [][]string
			for _, r := range rules {
				rows = append(rows, []string{r.Name, r.Mode, describeSelector(r.Actors), describeSubjects(r.Subjects), strings.Join(r.Clients, ","),
					strings.Join(r.Audiences, ","), strings.Join(r.Scopes, " "), r.TTL().String(), fmt.Sprint(r.RequireReason), actorMFAColumn(r), fmt.Sprint(!r.Disabled), r.Source})
			}
			return output(cmd, rules, func(w io.Writer) {
				table(w, "NAME\tMODE\tACTORS\tSUBJECTS\tCLIENTS\tAUDIENCES\tSCOPES\tMAX TTL\tREASON\tACTOR MFA\tENABLED\tSOURCE", rows)
			})
		}),
	}
}

// actorMFAColumn shows require_actor_mfa in `policy list`: the window, or "-" when not required.
func actorMFAColumn(r exchange.Rule) string {
	if r.RequireActorMFA <= 0 {
		return "-"
	}
	return "within " + time.Duration(r.RequireActorMFA).String()
}

func describeSelector(s exchange.Selector) string {
	var parts []string
	for _, p := range []struct {
		label string
		v     []string
	}{{"users", s.Users}, {"roles", s.Roles}, {"service accounts", s.ServiceAccounts}, {"clients", s.Clients}} {
		if len(p.v) > 0 {
			parts = append(parts, p.label+"="+strings.Join(p.v, ","))
		}
	}
	return strings.Join(parts, " ")
}

func describeSubjects(s exchange.Subjects) string {
	d := describeSelector(exchange.Selector{Users: s.Users, Roles: s.Roles})
	if len(s.ExcludeUsers)+len(s.ExcludeRoles) > 0 {
		d += " except " + describeSelector(exchange.Selector{Users: s.ExcludeUsers, Roles: s.ExcludeRoles})
	}
	return d
}

func policyRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a stored rule (audited)",
		Args:  cobra.ExactArgs(1),
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			ctx := cmd.Context()
			if err := recordChange(ctx, s, audit.TypePolicyChanged, "", map[string]any{"action": "remove", "rule": args[0]}); err != nil {
				return err
			}
			if err := s.Policy.Remove(ctx, args[0]); errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no stored rule %q (see `signet policy list`)", args[0])
			} else if err != nil {
				return err
			}
			return output(cmd, map[string]string{"removed": args[0]}, func(w io.Writer) { fmt.Fprintf(w, "Removed rule %q\n", args[0]) })
		}),
	}
}

// checkView is the answer of `policy check`.
type checkView struct {
	Allowed  bool     `json:"allowed"`
	Mode     string   `json:"mode"`
	Rule     string   `json:"rule,omitempty"`
	Scope    []string `json:"scope,omitempty"`
	Audience []string `json:"audience,omitempty"`
	TTL      string   `json:"ttl,omitempty"`
	// ActorMFA is the rule's require_actor_mfa window: the answer assumed the actor just passed a
	// second factor; the token endpoint will check the actor token's sign-in.
	ActorMFA    string `json:"require_actor_mfa,omitempty"`
	Error       string `json:"error,omitempty"`
	Description string `json:"description,omitempty"`
}

// Exit statuses of `policy check`, documented in its help and in docs/token-exchange.md.
const policyCheckExits = `Exit status: 0 when the exchange would be allowed, 1 when it would be denied (the answer says
why, with the error the token endpoint would return), 2 for a usage error (a missing or unknown
flag, an actor, subject or client that does not exist).`

func policyCheckCmd() *cobra.Command {
	var actor, subject, client, reason, requested string
	var audiences, scopes, actorScopes, subjectScopes []string
	var ttl time.Duration
	var byID bool
	cmd := &cobra.Command{
		Use:   "check --actor A --subject S --client C [--audience …] [--scope …]",
		Short: "Would this exchange be allowed, by which rule, with what scope and lifetime? (issues nothing)",
		Long: `Would this exchange be allowed, by which rule, with what scope and lifetime? Nothing is issued.

The answer comes from the token endpoint's own code, after client authentication: the requesting
client (or service account) must exist, be enabled and be allowed the token-exchange grant; then the
kill switch, the rules and the requested token type decide. A DENY gives the error and description
the endpoint would answer. The actor and subject are assumed to hold fresh tokens issued to the
requesting client, with the requested scope unless --actor-scope/--subject-scope say otherwise.

` + policyCheckExits,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError(fmt.Errorf("policy check takes no arguments, got %q; name the parties with --actor, --subject and --client", args))
			}
			return nil
		},
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			ctx := cmd.Context()
			if actor == "" || subject == "" || client == "" {
				return usageError(errors.New("--actor, --subject and --client are required"))
			}
			callerID, err := requesterByRef(cmd, s, client)
			if err != nil {
				return usageError(fmt.Errorf("--client: %w", err))
			}
			a, err := partyByRef(cmd, s, actor)
			if err != nil {
				return usageError(fmt.Errorf("--actor: %w", err))
			}
			sub, err := partyByRef(cmd, s, subject)
			if err != nil {
				return usageError(fmt.Errorf("--subject: %w", err))
			}
			if requested != "" && !strings.HasPrefix(requested, "urn:") {
				requested = "urn:ietf:params:oauth:token-type:" + requested
			}
			check := exchange.Check{Actor: a, Subject: sub, Audiences: audiences, Scope: scopes, ActorScope: actorScopes,
				SubjectScope: subjectScopes, Reason: reason, TTL: ttl, SubjectByUserID: byID}
			v, err := checkAnswer(s.OAuth.CheckExchange(ctx, callerID, check, requested))
			if err != nil {
				return err
			}
			if err := output(cmd, v, func(w io.Writer) {
				if v.Allowed {
					fmt.Fprintf(w, "ALLOW (%s) by rule %q: scope %q, audience %s, lifetime %s\n", v.Mode, v.Rule, strings.Join(v.Scope, " "), strings.Join(v.Audience, ","), v.TTL)
					if v.ActorMFA != "" {
						fmt.Fprintf(w, "  only if the actor token comes from a sign-in that passed a second factor within %s (assumed here)\n", v.ActorMFA)
					}
					return
				}
				fmt.Fprintf(w, "DENY (%s): %s: %s\n", v.Mode, v.Error, v.Description)
			}); err != nil {
				return err
			}
			if !v.Allowed {
				return answeredNo()
			}
			return nil
		}),
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	f := cmd.Flags()
	f.StringVar(&actor, "actor", "", "acting user or service account (ID or name)")
	f.StringVar(&subject, "subject", "", "user acted for (ID or username)")
	f.StringVar(&client, "client", "", "requesting client ID (or service account ID or name, when a service account requests)")
	f.StringSliceVar(&audiences, "audience", nil, "requested audience")
	f.StringSliceVar(&scopes, "scope", nil, "requested scope (also assumed to be in the input tokens unless --actor-scope/--subject-scope say otherwise)")
	f.StringSliceVar(&actorScopes, "actor-scope", nil, "scope of the actor's token")
	f.StringSliceVar(&subjectScopes, "subject-scope", nil, "scope of the subject's token (delegation)")
	f.StringVar(&reason, "reason", "", "reason, for rules that require one")
	f.DurationVar(&ttl, "ttl", 0, "requested lifetime")
	f.StringVar(&requested, "requested-token-type", "", "access_token (default), jwt, id_token or refresh_token (the urn:ietf:params:oauth:token-type: prefix may be left out)")
	f.BoolVar(&byID, "subject-by-id", false, "the exchange names the subject by user ID (impersonation, whoever acts) instead of sending the subject's token")
	return cmd
}

// checkAnswer turns the token endpoint's dry run into the answer of `policy check`: a refusal the
// endpoint would send is a DENY, any other error is the command's.
func checkAnswer(req exchange.Request, d *exchange.Decision, err error) (checkView, error) {
	v := checkView{Mode: req.Mode}
	if err == nil {
		v.Allowed, v.Rule, v.Scope, v.Audience, v.TTL = true, d.Rule, d.Scope, d.Audience, d.ExpiresAt.Sub(req.Now).Round(time.Second).String()
		if d.ActorMFA > 0 {
			v.ActorMFA = d.ActorMFA.String()
		}
		return v, nil
	}
	var oe *oauth.Error
	if !errors.As(err, &oe) || oe.Code == oauth.CodeServerError {
		return v, err
	}
	v.Error, v.Description = oe.Code, oe.Description
	var ref *exchange.Refusal
	if errors.As(oe.Cause, &ref) {
		v.Rule = ref.Rule
	}
	return v, nil
}

// requesterByRef finds the requesting client by ID, or a service account by ID or name, and
// returns its ID as the token endpoint knows it.
func requesterByRef(cmd *cobra.Command, s *server.Server, ref string) (string, error) {
	if c, err := s.Store.GetClient(cmd.Context(), ref); err == nil {
		return c.ID, nil
	}
	if sa, err := findServiceAccount(cmd.Context(), s, ref); err == nil {
		return sa.ID, nil
	}
	return "", fmt.Errorf("no client or service account %q (see `signet client list`)", ref)
}

// partyByRef finds a user or service account by ID or name, as the token endpoint would see it.
func partyByRef(cmd *cobra.Command, s *server.Server, ref string) (exchange.Party, error) {
	ctx := cmd.Context()
	if u, err := findUser(ctx, s, ref); err == nil {
		return exchange.PartyByKind(ctx, s.Dir, store.KindUser, u.ID)
	}
	if sa, err := findServiceAccount(ctx, s, ref); err == nil {
		return exchange.PartyByKind(ctx, s.Dir, store.KindServiceAccount, sa.ID)
	}
	return exchange.Party{}, fmt.Errorf("no user or service account %q", ref)
}

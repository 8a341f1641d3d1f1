package main

import (
	"bufio"
	"errors"
	"fmt"
	"github.com/signet-id/signet/internal/exchange"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/server"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/tokens"
)

func tokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Issue, explain and revoke access tokens"}
	cmd.AddCommand(tokenIssueCmd(), tokenExplainCmd(), tokenRevokeCmd())
	return cmd
}

type issuedView struct {
	AccessToken string   `json:"access_token"`
	TokenType   string   `json:"token_type"`
	ExpiresIn   int64    `json:"expires_in"`
	JTI         string   `json:"jti"`
	Scope       string   `json:"scope,omitempty"`
	Sub         string   `json:"sub"`
	ClientID    string   `json:"client_id"`
	Aud         []string `json:"aud"`
}

func tokenIssueCmd() *cobra.Command {
	var clientID, user, account, scope string
	var audiences []string
	var ttl time.Duration
	var forAdmin bool
	cmd := &cobra.Command{
		Use:   "issue --client ID [--user U | --serviceaccount S]",
		Short: "Mint an access token directly (for tests and scripts), under the client's rules",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			ctx := cmd.Context()
			if clientID == "" {
				return errors.New("--client is required: the token is issued to a client")
			}
			c, err := findClient(ctx, s, clientID)
			if err != nil {
				return err
			}
			if forAdmin {
				audiences = append(audiences, oauth.AdminAudience(s.Config.Issuer))
			}
			in := oauth.Issue{SubjectKind: store.KindClient, Subject: c.ID, ClientID: c.ID, Client: c,
				Scope: strings.Fields(scope), Audience: audiences, TTL: ttl}
			switch {
			case user != "" && account != "":
				return errors.New("use --user or --serviceaccount, not both")
			case user != "":
				u, err := findUser(ctx, s, user)
				if err != nil {
					return err
				}
				if u.Locked {
					return fmt.Errorf("user %s is locked", u.Username)
				}
				in.SubjectKind, in.Subject = store.KindUser, u.ID
			case account != "":
				a, err := findServiceAccount(ctx, s, account)
				if err != nil {
					return err
				}
				in.SubjectKind, in.Subject = store.KindServiceAccount, a.ID
			}
			resp, a, err := s.OAuth.IssueAccessToken(ctx, in)
			if err != nil {
				return err
			}
			// The token is shown only once its issuance is durable in the audit log.
			if err := s.Audit.Record(ctx, audit.Event{Type: audit.TypeTokenIssued, Actor: operator(), Subject: a.Subject, Client: a.ClientID,
				Details: map[string]any{"via": "signet token issue", "jti": a.ID, "scope": resp.Scope, "aud": a.Audience, "expires_at": a.ExpiresAt.UTC().Format(time.RFC3339)}}); err != nil {
				return err
			}
			v := issuedView{AccessToken: resp.AccessToken, TokenType: resp.TokenType, ExpiresIn: resp.ExpiresIn, JTI: a.ID,
				Scope: resp.Scope, Sub: a.Subject, ClientID: a.ClientID, Aud: a.Audience}
			// Plain output is for TOKEN=$(signet token issue …): the token alone on stdout.
			return output(cmd, v, func(w io.Writer) {
				fmt.Fprintln(w, v.AccessToken)
				fmt.Fprintf(cmd.ErrOrStderr(), "(jti %s, sub %s, expires in %ds)\n", v.JTI, v.Sub, v.ExpiresIn)
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&clientID, "client", "", "client the token is issued to (required)")
	f.StringVar(&user, "user", "", "user ID or username the token is about")
	f.StringVar(&account, "serviceaccount", "", "service account ID or name the token is about")
	f.StringVar(&scope, "scope", "", "space-separated scopes")
	f.StringSliceVar(&audiences, "audience", nil, "audience (an API's client ID) the client may request (repeatable)")
	f.DurationVar(&ttl, "ttl", 0, "lifetime (at most the client's)")
	f.BoolVar(&forAdmin, "admin", false, "for the admin API (audience <issuer>/admin/v1); the subject must hold signet:admin")
	return cmd
}

// readTokenArg takes the token from the argument, or from stdin when it is "-".
func readTokenArg(cmd *cobra.Command, args []string) (string, error) {
	if len(args) != 1 {
		return "", usageError(errors.New("pass the token, or - to read it from standard input"))
	}
	if args[0] != "-" {
		return strings.TrimSpace(args[0]), nil
	}
	line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

type explainView struct {
	Active bool           `json:"active"`
	Reason string         `json:"reason,omitempty"`
	Detail string         `json:"detail,omitempty"`
	Claims map[string]any `json:"claims,omitempty"`
}

func claimsOf(a *tokens.Access) map[string]any {
	if a == nil {
		return nil
	}
	m := map[string]any{
		"jti": a.ID, "sub": a.Subject, "sub_kind": a.SubjectKind, "client_id": a.ClientID, "aud": a.Audience,
		"scope": strings.Join(a.Scope, " "), "iat": a.IssuedAt.UTC().Format(time.RFC3339),
		"exp": a.ExpiresAt.UTC().Format(time.RFC3339), "format": a.Format, "iss": a.Issuer,
	}
	if a.Act != nil {
		m["act"] = a.Act
	}
	if a.SessionID != "" {
		m["sid"] = a.SessionID
	}
	if a.Exchange != nil {
		m["signet_exchange"] = a.Exchange
	}
	return m
}

func tokenExplainCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "explain TOKEN|-",
		Short: "Say whether a token is active and, if not, exactly why (the operator's view; callers only see active:false)",
		Long: `Say whether a token is active and, if not, exactly why (the operator's view; callers only see active:false).

Exit status: 0 active, 1 inactive (or an error), 2 usage error.`,
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			raw, err := readTokenArg(cmd, args)
			if err != nil {
				return err
			}
			if strings.HasPrefix(raw, secrets.RefreshTokenPrefix) {
				return explainRefresh(cmd, s, raw)
			}
			a, inactive, err := s.Tokens.Resolve(cmd.Context(), raw)
			if err != nil {
				return err
			}
			v := explainView{Active: inactive == nil, Claims: claimsOf(a)}
			if inactive != nil {
				v.Reason, v.Detail, v.Claims = inactive.Code, inactive.Detail, claimsOf(inactive.Access)
			}
			if secrets.LooksOpaque(raw) && v.Claims != nil {
				if t, err := s.Store.GetToken(cmd.Context(), s.Secrets.HashToken(raw)); err == nil && !t.RevokedAt.IsZero() {
					v.Claims["revoked_at"] = t.RevokedAt.UTC().Format(time.RFC3339)
				}
			}
			return printExplain(cmd, v)
		}),
	}
}

// explainExit is token explain's exit status: 0 active, 1 inactive (after printing why); usage
// errors exit 2.
func explainExit(v explainView) error {
	if v.Active {
		return nil
	}
	return answeredNo()
}

// printExplain prints the verdict and returns the exit status's error (1 for an inactive token).
func printExplain(cmd *cobra.Command, v explainView) error {
	if err := printExplainView(cmd, v); err != nil {
		return err
	}
	return explainExit(v)
}

func printExplainView(cmd *cobra.Command, v explainView) error {
	return output(cmd, v, func(w io.Writer) {
		if v.Active {
			fmt.Fprintln(w, "ACTIVE")
		} else {
			fmt.Fprintf(w, "INACTIVE: %s\n  %s\n", v.Reason, v.Detail)
		}
		for _, k := range []string{"token_kind", "jti", "format", "iss", "sub", "sub_kind", "client_id", "aud", "scope", "iat", "exp", "used_at", "revoked_at", "grant", "sid", "act", "signet_exchange"} {
			if x, ok := v.Claims[k]; ok {
				fmt.Fprintf(w, "  %-16s %v\n", k+":", x)
			}
		}
	})
}

// explainRefresh describes a refresh token: usable, or why not (used, revoked, expired), with its
// grant so the whole family can be revoked.
func explainRefresh(cmd *cobra.Command, s *server.Server, raw string) error {
	t, a, inactive, err := s.Tokens.ResolveRefresh(cmd.Context(), raw)
	if err != nil {
		return err
	}
	v := explainView{Active: inactive == nil, Claims: claimsOf(a)}
	if inactive != nil {
		v.Reason, v.Detail = inactive.Code, inactive.Detail
	}
	if t != nil {
		v.Claims["token_kind"], v.Claims["grant"], v.Claims["format"] = store.TokenRefresh, t.GrantID, "opaque"
		for k, at := range map[string]time.Time{"used_at": t.UsedAt, "revoked_at": t.RevokedAt} {
			if !at.IsZero() {
				v.Claims[k] = at.UTC().Format(time.RFC3339)
			}
		}
	}
	return printExplain(cmd, v)
}

func tokenRevokeCmd() *cobra.Command {
	var jti, clientID, subject, session, grant, reason string
	cmd := &cobra.Command{
		Use:   "revoke [TOKEN|-] [--jti ID | --client ID | --subject ID | --session ID | --grant ID]",
		Short: "Revoke one token, or every token of a client, subject or session; every replica sees it within the poll interval",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			ctx := cmd.Context()
			now := time.Now()
			// Kept until no token it could match is valid: access tokens live at most
			// MaxAccessTTL, refresh tokens of an exchange session at most MaxRefreshTTL.
			rev := store.Revocation{At: now, ExpiresAt: now.Add(max(s.Config.MaxAccessTTL, exchange.MaxRefreshTTL) + time.Hour), Reason: reason}
			set := 0
			for _, x := range []struct{ kind, value string }{{store.RevokeTokenID, jti}, {store.RevokeClient, clientID}, {store.RevokeSubject, subject}, {store.RevokeSession, session}, {store.RevokeGrant, grant}} {
				if x.value != "" {
					rev.Kind, rev.Value = x.kind, x.value
					set++
				}
			}
			var raw string
			if len(args) > 0 {
				var err error
				if raw, err = readTokenArg(cmd, args); err != nil {
					return err
				}
			}
			if strings.HasPrefix(raw, secrets.RefreshTokenPrefix) {
				// A refresh token is revoked with its whole grant (RFC 7009 §2.1).
				t, _, _, err := s.Tokens.ResolveRefresh(ctx, raw)
				if err != nil {
					return err
				}
				if t == nil {
					return errors.New("no refresh token with this value was issued here")
				}
				rev.Kind, rev.Value = tokens.Family(t)
				set++
			} else if raw != "" {
				a, inactive, err := s.Tokens.Resolve(ctx, raw)
				if err != nil {
					return err
				}
				if inactive != nil {
					if inactive.Access == nil {
						return fmt.Errorf("this is not a token Signet can identify (%s: %s)", inactive.Code, inactive.Detail)
					}
					a = inactive.Access
				}
				rev.Kind, rev.Value, rev.ExpiresAt = store.RevokeTokenID, a.ID, tokens.KeepRevocationUntil(a.ExpiresAt)
				set++
			}
			if set != 1 {
				return errors.New("name exactly one of: a token, --jti, --client, --subject, --session or --grant")
			}
			if rev.Reason == "" {
				rev.Reason = "revoked with signet token revoke"
				if u := os.Getenv("USER"); u != "" {
					rev.Reason += " by " + u
				}
			}
			if err := recordChange(ctx, s, audit.TypeTokenRevoked, "", map[string]any{"kind": rev.Kind, "value": rev.Value, "reason": rev.Reason}); err != nil {
				return err
			}
			if err := s.Tokens.Revoke(ctx, rev); err != nil {
				return err
			}
			return output(cmd, map[string]string{"kind": rev.Kind, "value": rev.Value, "reason": rev.Reason}, func(w io.Writer) {
				fmt.Fprintf(w, "Revoked %s %s (%s)\n", rev.Kind, rev.Value, rev.Reason)
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&jti, "jti", "", "token ID")
	f.StringVar(&clientID, "client", "", "every token issued to this client until now")
	f.StringVar(&subject, "subject", "", "every token about this user or service account ID until now")
	f.StringVar(&session, "session", "", "every token of this session")
	f.StringVar(&grant, "grant", "", "every token of this grant (a refresh token's family, as token explain shows it)")
	f.StringVar(&reason, "reason", "", "why (shown by token explain and in logs)")
	return cmd
}

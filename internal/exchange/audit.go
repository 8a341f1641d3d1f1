package exchange

// Allowed is the details of an exchange.allowed audit event: written by the token endpoint when an
// exchange is granted, read by the notifier (the audit log is its outbox). One type for both, so
// what is written is what is read.
type Allowed struct {
	Mode               string   `json:"mode"`
	Rule               string   `json:"rule,omitempty"`
	Audience           []string `json:"audience"`
	Scope              string   `json:"scope"`
	ExpiresAt          string   `json:"expires_at"`
	Reason             string   `json:"reason,omitempty"`
	JTI                string   `json:"jti"`
	RequestedTokenType string   `json:"requested_token_type"`
	Session            string   `json:"session,omitempty"`
	ParentSession      string   `json:"parent_session,omitempty"`
	RuleSource         string   `json:"rule_source,omitempty"`
	NotifySubject      bool     `json:"notify_subject,omitempty"`
	RefreshUntil       string   `json:"refresh_until,omitempty"`
	// ActorSignIn and ActorMFAAt: the actor's sign-in (sid) and its second factor's time, when the
	// rule required one (require_actor_mfa).
	ActorSignIn string `json:"actor_sid,omitempty"`
	ActorMFAAt  string `json:"actor_mfa_at,omitempty"`
	SourceIP    string `json:"source_ip"`
	UserAgent   string `json:"user_agent"`
}

package tokens_test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/tokens"
)

func ids(links []tokens.Link) []string {
	var out []string
	for _, l := range links {
		out = append(out, l.ID)
	}
	return out
}

// TestDeriveRecordsEveryAncestorOnce: a derived token's lineage is each parent, then the parent's own
// ancestors, each once, nil parents skipped; past MaxLineage ancestors derivation is refused.
func TestDeriveRecordsEveryAncestorOnce(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	grand := tokens.Link{ID: "g", Subject: "u-dana", Kind: store.KindUser, Client: "c-web", IssuedAt: t0.Unix()}
	subject := &tokens.Access{ID: "s", Subject: "u-dana", SubjectKind: store.KindUser, ClientID: "c-app", IssuedAt: t0, GrantID: "gr-1",
		Exchange: &tokens.Exchange{Kind: "delegation", Session: "xs-1"}, Act: &tokens.Actor{Subject: "sa-bot", ClientID: "c-bots"}, Lineage: []tokens.Link{grand}}
	actor := &tokens.Access{ID: "a", Subject: "sa-bot", SubjectKind: store.KindServiceAccount, ClientID: "c-app", IssuedAt: t0, Lineage: []tokens.Link{grand}}
	got, err := tokens.Derive(subject, nil, actor)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids(got)) != "[s g a]" {
		t.Fatalf("lineage %v, want [s g a]", ids(got))
	}
	want := tokens.Link{ID: "s", Subject: "u-dana", Kind: store.KindUser, Client: "c-app", IssuedAt: t0.Unix(), Grant: "gr-1",
		Exchange: subject.Exchange, Actor: "sa-bot", ActorVia: "c-bots"}
	if !reflect.DeepEqual(got[0], want) {
		t.Fatalf("the parent's link %+v, want %+v", got[0], want)
	}
	if got, err := tokens.Derive(&tokens.Access{}); err != nil || len(got) != 0 {
		t.Fatalf("a parent without an ID adds nothing: %v %v", got, err)
	}

	var deep []tokens.Link
	for i := range tokens.MaxLineage - 1 {
		deep = append(deep, tokens.Link{ID: fmt.Sprint("l", i)})
	}
	if got, err := tokens.Derive(&tokens.Access{ID: "p", Lineage: deep}); err != nil || len(got) != tokens.MaxLineage {
		t.Fatalf("exactly MaxLineage ancestors: %d %v", len(got), err)
	}
	deep = append(deep, tokens.Link{ID: "one-too-many"})
	if _, err := tokens.Derive(&tokens.Access{ID: "p", Lineage: deep}); !errors.Is(err, tokens.ErrLineageTooDeep) {
		t.Fatalf("MaxLineage+1 ancestors: %v", err)
	}
}

// TestSessionsListsEachSessionOnce: the token's own session first, then its ancestors', each once.
func TestSessionsListsEachSessionOnce(t *testing.T) {
	a := &tokens.Access{ID: "t", Exchange: &tokens.Exchange{Session: "xs-2"}, Lineage: []tokens.Link{
		{ID: "p1", Exchange: &tokens.Exchange{Session: "xs-2"}},
		{ID: "p2"},
		{ID: "p3", Exchange: &tokens.Exchange{Session: "xs-1"}},
	}}
	if got := ids(a.Sessions()); fmt.Sprint(got) != "[t p3]" {
		t.Fatalf("sessions from %v, want [t p3]", got)
	}
	if got := (&tokens.Access{ID: "x"}).Sessions(); len(got) != 0 {
		t.Fatalf("a token of no session: %v", got)
	}
}

// TestRevocationsOutliveEveryDescendant: a revocation of a token expiring at exp is kept until a
// session opened from it (MaxSessionLife) has ended too, with an hour to spare.
func TestRevocationsOutliveEveryDescendant(t *testing.T) {
	exp := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	if got, want := tokens.KeepRevocationUntil(exp), exp.Add(tokens.MaxSessionLife+time.Hour); !got.Equal(want) {
		t.Fatalf("kept until %v, want %v", got, want)
	}
}

// TestHasAudience: a token is for an audience only when it names it.
func TestHasAudience(t *testing.T) {
	a := &tokens.Access{Audience: []string{"c-api", "c-billing"}}
	if !a.HasAudience("c-billing") || a.HasAudience("c-ap") || (&tokens.Access{}).HasAudience("") {
		t.Fatal("HasAudience")
	}
}

package tokens

import (
	"fmt"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/store"
)

func TestRevocationMatching(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	a := &Access{ID: "jti-1", Subject: "user-1", ClientID: "app", GrantID: "g-1", SessionID: "s-1", IssuedAt: t0,
		Exchange: &Exchange{Kind: "impersonation", Session: "x-1"}}
	for _, tc := range []struct {
		name    string
		rev     store.Revocation
		revoked bool
	}{
		{"token id", store.Revocation{Kind: store.RevokeTokenID, Value: "jti-1", At: t0.Add(-time.Hour)}, true},
		{"other token id", store.Revocation{Kind: store.RevokeTokenID, Value: "jti-2", At: t0}, false},
		{"grant", store.Revocation{Kind: store.RevokeGrant, Value: "g-1", At: t0.Add(-time.Hour)}, true},
		{"session", store.Revocation{Kind: store.RevokeSession, Value: "s-1"}, true},
		{"exchange session", store.Revocation{Kind: store.RevokeSession, Value: "x-1"}, true},
		{"subject after issue", store.Revocation{Kind: store.RevokeSubject, Value: "user-1", At: t0.Add(time.Second)}, true},
		{"subject at issue", store.Revocation{Kind: store.RevokeSubject, Value: "user-1", At: t0}, true},
		{"subject before issue", store.Revocation{Kind: store.RevokeSubject, Value: "user-1", At: t0.Add(-time.Second)}, false},
		{"client after issue", store.Revocation{Kind: store.RevokeClient, Value: "app", At: t0.Add(time.Minute)}, true},
		{"client before issue", store.Revocation{Kind: store.RevokeClient, Value: "app", At: t0.Add(-time.Minute)}, false},
		{"other client", store.Revocation{Kind: store.RevokeClient, Value: "other", At: t0.Add(time.Minute)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r revocations
			r.replace([]store.Revocation{tc.rev})
			if _, got := r.match(a); got != tc.revoked {
				t.Fatalf("revoked = %v, want %v", got, tc.revoked)
			}
		})
	}
	t.Run("empty values never match", func(t *testing.T) {
		var r revocations
		r.add(store.Revocation{Kind: store.RevokeSession, Value: ""})
		if _, got := r.match(&Access{ID: "x"}); got {
			t.Fatal("a token without a session matched an empty session revocation")
		}
	})
	t.Run("latest cut-off wins", func(t *testing.T) {
		var r revocations
		r.add(store.Revocation{Kind: store.RevokeSubject, Value: "user-1", At: t0.Add(time.Hour)})
		r.add(store.Revocation{Kind: store.RevokeSubject, Value: "user-1", At: t0.Add(-time.Hour)})
		if _, got := r.match(a); !got {
			t.Fatal("an older cut-off replaced a newer one")
		}
	})
}

func TestCacheIsBounded(t *testing.T) {
	c := newCache(320)
	now := time.Now()
	live := &Access{ExpiresAt: now.Add(time.Hour)}
	for i := range 5000 {
		c.put(cacheKey(string(rune(i))+"tok"), live, now)
	}
	if n := c.len(); n > 320 || n < 100 {
		t.Fatalf("cache holds %d entries, bound is 320", n)
	}
	k := cacheKey("hot")
	c.put(k, &Access{ID: "hot", ExpiresAt: now.Add(time.Hour)}, now)
	if a, ok := c.get(k); !ok || a.ID != "hot" {
		t.Fatal("a just-inserted entry must be found")
	}
}

// TestCacheDropsExpiredTokensFirst: a full shard makes room by dropping expired tokens before live
// ones, and Sweep empties the cache of what can never be active again.
func TestCacheDropsExpiredTokensFirst(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	c := newCache(cacheShards * 4) // four entries per shard
	var keys [][32]byte
	for i := range 2000 {
		k := cacheKey(fmt.Sprint("tok", i))
		exp := now.Add(time.Hour)
		if i%2 == 0 {
			exp = now.Add(-time.Minute) // expired
		}
		c.put(k, &Access{ExpiresAt: exp}, now)
		keys = append(keys, k)
	}
	live := 0
	for i, k := range keys {
		if a, ok := c.get(k); ok && i%2 == 1 && a.ExpiresAt.After(now) {
			live++
		}
	}
	if live == 0 {
		t.Fatal("no live token survived; expired ones must go first")
	}
	expired := 0
	for i := range c.shards {
		for _, a := range c.shards[i].m {
			if !now.Before(a.ExpiresAt) {
				expired++
			}
		}
	}
	if n := c.sweep(now); n != expired {
		t.Fatalf("sweep dropped %d, want the %d expired entries", n, expired)
	}
	for i := range c.shards {
		for _, a := range c.shards[i].m {
			if !now.Before(a.ExpiresAt) {
				t.Fatal("an expired token survived the sweep")
			}
		}
	}
}

// TestUnknownOpaqueTokensAreRememberedBriefly: the negative cache answers for NegativeTTL, then
// forgets, and never grows past its bound.
func TestUnknownOpaqueTokensAreRememberedBriefly(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	u := unknownTokens{max: 100}
	k := cacheKey("sgn_at_nope")
	u.add(k, now)
	if !u.has(k, now.Add(NegativeTTL-time.Second)) || u.has(k, now.Add(NegativeTTL)) {
		t.Fatal("an unknown token is remembered for exactly NegativeTTL")
	}
	for i := range 1000 {
		u.add(cacheKey(fmt.Sprint("flood", i)), now)
	}
	if len(u.seen) > 100 {
		t.Fatalf("the negative cache grew to %d entries past its bound of 100", len(u.seen))
	}
}

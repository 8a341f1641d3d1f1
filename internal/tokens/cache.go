package tokens

import (
	"crypto/sha256"
	"sync"
	"time"
	"unsafe"
)

const cacheShards = 32

// cache maps a token's SHA-256 to what resolving it found. It is bounded: a full shard drops an
// arbitrary tenth of its entries, which is cheap and good enough for tokens that expire anyway.
type cache struct {
	perShard int
	shards   [cacheShards]shard
}

type shard struct {
	mu sync.RWMutex
	m  map[[32]byte]*Access
}

func newCache(size int) *cache {
	c := &cache{perShard: max(size/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[[32]byte]*Access)
	}
	return c
}

// cacheKey hashes the token without copying it (the hash only reads the bytes).
func cacheKey(raw string) [32]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
}

func (c *cache) get(k [32]byte) (*Access, bool) {
	s := &c.shards[k[0]%cacheShards]
	s.mu.RLock()
	a, ok := s.m[k]
	s.mu.RUnlock()
	return a, ok
}

// put keeps a; a full shard first drops its expired tokens and, if that frees nothing, an
// arbitrary tenth of its entries.
func (c *cache) put(k [32]byte, a *Access, now time.Time) {
	s := &c.shards[k[0]%cacheShards]
	s.mu.Lock()
	if len(s.m) >= c.perShard && s.sweep(now) == 0 {
		n := len(s.m)/10 + 1
		for key := range s.m {
			delete(s.m, key)
			if n--; n == 0 {
				break
			}
		}
	}
	s.m[k] = a
	s.mu.Unlock()
}

// sweep drops the shard's expired tokens (callers hold s.mu) and says how many.
func (s *shard) sweep(now time.Time) int {
	n := 0
	for key, a := range s.m {
		if !now.Before(a.ExpiresAt) {
			delete(s.m, key)
			n++
		}
	}
	return n
}

// sweep drops every expired token, so an idle replica does not keep (and scan, in every garbage
// collection) what can never be answered active again.
func (c *cache) sweep(now time.Time) int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.Lock()
		n += c.shards[i].sweep(now)
		c.shards[i].mu.Unlock()
	}
	return n
}

// unknownTokens remembers, briefly, opaque values the store does not know: a flood of random
// tokens then costs one store read per value and per NegativeTTL, not one per request. A value
// cannot be issued later (opaque tokens are 32 random bytes), so remembering it hides nothing.
type unknownTokens struct {
	mu   sync.Mutex
	seen map[[32]byte]time.Time // when the entry expires
	max  int
}

// NegativeTTL is how long an unknown opaque token is remembered as unknown.
const NegativeTTL = 30 * time.Second

func (u *unknownTokens) has(k [32]byte, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	exp, ok := u.seen[k]
	return ok && now.Before(exp)
}

func (u *unknownTokens) add(k [32]byte, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.seen == nil {
		u.seen = map[[32]byte]time.Time{}
	}
	if len(u.seen) >= u.max {
		for key, exp := range u.seen {
			if !now.Before(exp) {
				delete(u.seen, key)
			}
		}
		if len(u.seen) >= u.max {
			clear(u.seen) // a flood beyond the bound: start over rather than grow
		}
	}
	u.seen[k] = now.Add(NegativeTTL)
}

func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.RLock()
		n += len(c.shards[i].m)
		c.shards[i].mu.RUnlock()
	}
	return n
}

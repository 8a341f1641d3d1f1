package tokens

import (
	"crypto/sha256"
	"sync"
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

func (c *cache) put(k [32]byte, a *Access) {
	s := &c.shards[k[0]%cacheShards]
	s.mu.Lock()
	if len(s.m) >= c.perShard {
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

func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.RLock()
		n += len(c.shards[i].m)
		c.shards[i].mu.RUnlock()
	}
	return n
}

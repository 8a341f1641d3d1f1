package tokens_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/keys"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/store/sqlite"
	"github.com/signet-id/signet/internal/tokens"
)

// fill stores n opaque access tokens and returns a random sample of their raw values.
func fill(b *testing.B, st store.Store, sk *secrets.Keys, n, sample int) []string {
	b.Helper()
	ctx := context.Background()
	now := time.Now()
	raws := make([]string, 0, sample)
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan int, 1024)
	errs := make(chan error, 1)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				raw := secrets.NewOpaqueToken(secrets.AccessTokenPrefix)
				err := st.CreateToken(ctx, &store.Token{
					Hash: sk.HashToken(raw), ID: "t" + strconv.Itoa(i), Kind: store.TokenAccess, ClientID: "bench",
					SubjectKind: store.KindClient, Subject: "bench", Audience: []string{"bench"},
					IssuedAt: now, ExpiresAt: now.Add(time.Hour),
				})
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
				if i%max(n/sample, 1) == 0 {
					mu.Lock()
					if len(raws) < sample {
						raws = append(raws, raw)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	return raws
}

// p50 resolves sampled tokens (cache too small to help) and returns the median latency.
func p50(b *testing.B, svc *tokens.Service, raws []string, rounds int) time.Duration {
	ctx := context.Background()
	d := make([]time.Duration, 0, rounds)
	for i := range rounds {
		raw := raws[rand.IntN(len(raws))]
		start := time.Now()
		a, inactive, err := svc.Resolve(ctx, raw)
		d = append(d, time.Since(start))
		if err != nil || inactive != nil || a == nil {
			b.Fatalf("round %d: %v %v", i, inactive, err)
		}
	}
	slices.Sort(d)
	return d[len(d)/2]
}

// BenchmarkOpaqueIntrospectionScaling measures the p50 of resolving one opaque token (a store
// lookup by keyed hash, the in-process cache defeated) with 1,000 and with 1,000,000 stored tokens,
// in the same run, and reports the ratio. Target: ratio ≤ 1.5. SIGNET_BENCH_TOKENS overrides the
// large size.
//
// Both stores are filled first and reopened, so both are measured in the steady state of a running
// server (the write-ahead log folded into the database file) rather than in the wake of a bulk
// insert. The two sizes are then measured in alternating rounds and the medians reported, so a
// drift in this shared machine's speed affects both sides alike.
func BenchmarkOpaqueIntrospectionScaling(b *testing.B) {
	large := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("SIGNET_BENCH_TOKENS")); err == nil && v > 0 {
		large = v
	}
	const rounds, perRound = 7, 4_000
	sk, _ := secrets.New(bytes.Repeat([]byte{7}, 32))
	ctx := context.Background()
	sizes := []int{1_000, large}
	svcs := make([]*tokens.Service, len(sizes))
	samples := make([][]string, len(sizes))
	for i, n := range sizes {
		path := filepath.Join(b.TempDir(), "bench.db")
		st, err := sqlite.Open(ctx, path)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		samples[i] = fill(b, st, sk, n, 10_000)
		b.Logf("stored %d tokens in %v", n, time.Since(start).Round(time.Millisecond))
		st.Close()
		if st, err = sqlite.Open(ctx, path); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		km := keys.NewManager(st, sk, time.Hour)
		svcs[i] = tokens.New(tokens.Config{Issuer: "http://bench", Store: st, Keys: km, Secrets: sk, CacheSize: 1})
		p50(b, svcs[i], samples[i], 2_000) // warm the page cache the same way for both sizes
	}
	perSize := make([][]time.Duration, len(sizes))
	var ratios []float64
	for range rounds {
		var got [2]time.Duration
		for i := range sizes {
			got[i] = p50(b, svcs[i], samples[i], perRound)
			perSize[i] = append(perSize[i], got[i])
		}
		ratios = append(ratios, float64(got[1])/float64(got[0]))
	}
	small, big := median(perSize[0]), median(perSize[1])
	ratio := median(ratios)
	b.ReportMetric(float64(small.Nanoseconds()), "p50-ns/1k")
	b.ReportMetric(float64(big.Nanoseconds()), fmt.Sprintf("p50-ns/%d", large))
	b.ReportMetric(ratio, "ratio")
	b.Logf("p50 with 1,000 tokens: %v; with %d: %v; ratio %.2f (median of %d alternating rounds, each ratio %.2f–%.2f; target ≤ 1.5)",
		small, large, big, ratio, rounds, slices.Min(ratios), slices.Max(ratios))
}

func median[T time.Duration | float64](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver for the run's schema
)

// spread drives the same request at every replica at once, each with its own wrk, and adds their
// figures up: req/s is the sum, p50 and p99 the highest of the replicas' (so a slow replica shows),
// and each replica's own result is kept.
func spread(ctx context.Context, drivers []*driver, sigs []*proc, req request, warmup, dur time.Duration) (result, error) {
	results := make([]result, len(sigs))
	errs := make([]error, len(sigs))
	var wg sync.WaitGroup
	for i, p := range sigs {
		r := req
		r.url = strings.Replace(req.url, sigs[0].url, p.url, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if warmup > 0 {
				drivers[i].run(ctx, r, warmup)
			}
			results[i], errs[i] = drivers[i].run(ctx, r, dur)
		}()
	}
	wg.Wait()
	var sum result
	sum.Status = "ok"
	for i, r := range results {
		if errs[i] != nil {
			return sum, fmt.Errorf("replica %d: %w", i+1, errs[i])
		}
		sum.RPS += r.RPS
		sum.P50Ms, sum.P99Ms = max(sum.P50Ms, r.P50Ms), max(sum.P99Ms, r.P99Ms)
		sum.Requests += r.Requests
		sum.Non2xx += r.Non2xx
		sum.SockErrors += r.SockErrors
		r.Scenario = fmt.Sprintf("replica %d", i+1)
		r.PeakRSSMB = sigs[i].peakRSS()
		sum.PerReplica = append(sum.PerReplica, r)
	}
	return sum, nil
}

// propagationResult is how long a revocation made at one replica took to be seen at another.
type propagationResult struct {
	Samples  int     `json:"samples"`
	MedianMs float64 `json:"median_ms"`
	MaxMs    float64 `json:"max_ms"`
}

// propagation issues a token at the first replica, revokes it there and asks the second replica
// until it answers inactive, n times; each wait is bounded (2 s).
func propagation(ctx context.Context, e *benchEnv, sigs []*proc, n int) (*propagationResult, error) {
	post := func(base, path string, form url.Values, id, secret string) (map[string]any, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(form.Encode()))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return m, nil
	}
	var took []float64
	for range n {
		tok, err := post(sigs[0].url, "/oauth/v2/token", url.Values{"grant_type": {"client_credentials"}, "audience": {e.api.ID}}, e.jwt.ID, e.jwt.Secret)
		if err != nil {
			return nil, err
		}
		raw, _ := tok["access_token"].(string)
		if raw == "" {
			return nil, fmt.Errorf("no token: %v", tok)
		}
		introspect := func() (bool, error) {
			m, err := post(sigs[1].url, "/oauth/v2/introspect", url.Values{"token": {raw}}, e.api.ID, e.api.Secret)
			return m["active"] == true, err
		}
		if active, err := introspect(); err != nil || !active {
			return nil, fmt.Errorf("the second replica does not see a fresh token active (%v)", err)
		}
		start := time.Now()
		if _, err := post(sigs[0].url, "/oauth/v2/revoke", url.Values{"token": {raw}}, e.jwt.ID, e.jwt.Secret); err != nil {
			return nil, err
		}
		for {
			active, err := introspect()
			if err != nil {
				return nil, err
			}
			if !active {
				break
			}
			if time.Since(start) > 2*time.Second {
				return nil, fmt.Errorf("a revocation was not seen by the second replica within 2 s")
			}
		}
		took = append(took, float64(time.Since(start).Microseconds())/1000)
	}
	slices.Sort(took)
	return &propagationResult{Samples: len(took), MedianMs: took[len(took)/2], MaxMs: took[len(took)-1]}, nil
}

// freshSchema gives the run a schema of its own in the PostgreSQL database dsn names (dropped when
// done), so runs never see each other's clients and users.
func freshSchema(ctx context.Context, dsn string) (string, func(), error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return "", nil, err
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "signet_bench_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("creating a schema for the run: %w", err)
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + schema, func() {
		db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		db.Close()
	}, nil
}

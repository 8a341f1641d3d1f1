package backends_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/store/backends"
	"github.com/signet-id/signet/internal/store/sqlstore"
	"github.com/signet-id/signet/internal/store/storetest"
	"github.com/signet-id/signet/internal/testenv"
)

// BenchmarkWrites measures the group-commit writer on each backend with 64 concurrent callers, as
// the token endpoint writes: an exchange session with its audit event, and an opaque token alone.
// Compare the backends' ns/op within one run: `go test -bench Writes -cpu 2 ./internal/store/backends`.
func BenchmarkWrites(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, write := range []string{"exchange-session", "opaque-token"} {
			b.Run(backend+"/"+write, func(b *testing.B) {
				dsn := "sqlite:" + filepath.Join(b.TempDir(), "bench.db")
				if backend == "postgres" {
					dsn = testenv.PostgresDSN(b)
				}
				s, err := backends.Open(context.Background(), dsn, sqlstore.WithAuditKey(storetest.AuditKey))
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				var n atomic.Int64
				b.SetParallelism(32) // × GOMAXPROCS callers
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					ctx := context.Background()
					for pb.Next() {
						i := n.Add(1)
						var err error
						now := time.Now()
						if write == "exchange-session" {
							id := fmt.Sprintf("xs-%d", i)
							err = s.OpenExchangeSession(ctx, &store.ExchangeSession{ID: id, Kind: "delegation", Actor: "a", Subject: "s", CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
								&store.AuditEvent{At: now, Type: "exchange.allowed", Actor: "a", Subject: "s", Details: []byte(`{"session":"` + id + `"}`)})
						} else {
							err = s.CreateToken(ctx, &store.Token{Hash: []byte(fmt.Sprintf("hash-%d", i)), ID: fmt.Sprintf("tk-%d", i), Kind: store.TokenAccess,
								ClientID: "c", SubjectKind: store.KindClient, Subject: "c", IssuedAt: now, ExpiresAt: now.Add(time.Hour)})
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

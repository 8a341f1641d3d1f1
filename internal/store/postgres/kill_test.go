package postgres_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/store/postgres"
	"github.com/signet-id/signet/internal/store/sqlstore"
	"github.com/signet-id/signet/internal/store/storetest"
	"github.com/signet-id/signet/internal/testenv"
)

// childDSN, set in the environment, makes the test binary a replica that writes until it is killed
// (TestReplicaKilledMidBatch starts it).
const childDSN = "SIGNET_TEST_KILLED_REPLICA_DSN"

func TestMain(m *testing.M) {
	if dsn := os.Getenv(childDSN); dsn != "" {
		os.Exit(writeUntilKilled(dsn))
	}
	os.Exit(m.Run())
}

// openSession is one write as the token endpoint makes it for an exchange: the session and its
// audit event, durable together or not at all.
func openSession(ctx context.Context, s store.Store, id string) error {
	return s.OpenExchangeSession(ctx, &store.ExchangeSession{ID: id, Kind: "delegation", Actor: "a", Subject: "s", CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)},
		&store.AuditEvent{At: time.Now(), Type: audit.TypeExchangeAllowed, Subject: id})
}

// writeUntilKilled is the replica to kill: 16 writers opening sessions without pause, so its
// group-commit writer always has a batch in flight. It prints "writing" once its first write is
// committed.
func writeUntilKilled(dsn string) int {
	ctx := context.Background()
	s, err := postgres.Open(ctx, dsn, sqlstore.WithAuditKey(storetest.AuditKey), sqlstore.WithAuditChain("victim"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var once sync.Once
	var n atomic.Int64
	for w := range 16 {
		go func() {
			for {
				if err := openSession(ctx, s, fmt.Sprintf("victim-%d-%d", w, n.Add(1))); err == nil {
					once.Do(func() { fmt.Println("writing") })
				}
			}
		}()
	}
	select {}
}

// TestReplicaKilledMidBatch: a replica is killed with SIGKILL while its writer has batches in
// flight, and another replica writes all along. Nothing half-written remains — every session has its
// audit event and every event its session — the survivor never fails, and every chain, the killed
// replica's included, verifies: its registered head is its last committed batch's.
func TestReplicaKilledMidBatch(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	survivor := open(t, dsn) // migrates before the child starts
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childDSN+"="+dsn)
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })

	ctx := context.Background()
	stop := make(chan struct{})
	var survived, failed atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := openSession(ctx, survivor, fmt.Sprintf("survivor-%d-%d", w, i)); err != nil {
					failed.Add(1)
					t.Errorf("the surviving replica's write failed: %v", err)
					return
				}
				survived.Add(1)
			}
		}()
	}

	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "writing" {
		t.Fatalf("the replica to kill did not start writing: %q %v", lines.Text(), lines.Err())
	}
	// Let it commit a few hundred writes, so its chain is long and its writer busy, then kill it.
	testenv.Eventually(t, "the replica to kill commits 300 writes", func() bool {
		var n int
		survivor.R.QueryRowContext(ctx, `SELECT count(*) FROM audit_events WHERE chain = 'victim'`).Scan(&n)
		return n >= 300
	})
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	before := survived.Load()
	testenv.Eventually(t, "the survivor keeps writing after the kill", func() bool { return survived.Load() > before+200 })
	close(stop)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of the surviving replica's writes failed", failed.Load())
	}

	var orphanSessions, orphanEvents int
	survivor.R.QueryRowContext(ctx, `SELECT count(*) FROM exchange_sessions s WHERE NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.subject = s.id)`).Scan(&orphanSessions)
	survivor.R.QueryRowContext(ctx, `SELECT count(*) FROM audit_events e WHERE e.type = 'exchange.allowed' AND NOT EXISTS (SELECT 1 FROM exchange_sessions s WHERE s.id = e.subject)`).Scan(&orphanEvents)
	if orphanSessions != 0 || orphanEvents != 0 {
		t.Fatalf("half-written batches remain: %d sessions without their event, %d events without their session", orphanSessions, orphanEvents)
	}
	res, err := audit.Verify(ctx, survivor, storetest.AuditKey)
	if err != nil || !res.Intact || len(res.Chains) != 2 {
		t.Fatalf("the chains after the kill: %+v %v", res, err)
	}
	for _, c := range res.Chains {
		if c.Chain == "victim" {
			t.Logf("the killed replica's chain ends at event %d; the survivor wrote %d sessions meanwhile", c.Position, survived.Load())
		}
	}
}

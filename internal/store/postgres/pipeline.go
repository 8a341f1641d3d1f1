package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/signet-id/signet/internal/store/sqlstore"
)

// pipeline is the group-commit writer's committer on PostgreSQL: a connection of its own, and each
// batch sent as one pipeline — BEGIN, every statement, COMMIT — so a batch costs one round trip
// however many writes it carries. Statements are prepared once per connection (pgx's statement
// cache) and reused by every batch after. A statement that must change an exact number of rows is
// wrapped to raise when it does not (signet_expect_rows), so that PostgreSQL stops the transaction
// right there: nothing after it runs, the COMMIT included, and the writer learns which statement
// failed from the pipeline's results.
type pipeline struct {
	cfg  *pgx.ConnConfig
	conn *pgx.Conn
}

func newPipeline(cfg *pgx.ConnConfig) *pipeline { return &pipeline{cfg: cfg} }

// errRowsCode is the SQLSTATE signet_expect_rows raises.
const errRowsCode = "SG001"

func (p *pipeline) Commit(ctx context.Context, steps []sqlstore.Step) (int, error) {
	failed, err, again := p.commitOnce(ctx, steps)
	if again {
		// Nothing of the batch committed and the connection is gone: once more on a new one.
		failed, err, _ = p.commitOnce(ctx, steps)
	}
	return failed, err
}

// commitOnce sends the batch once. again reports that the connection failed and that nothing of
// the batch committed, so that it can be sent again as it is.
func (p *pipeline) commitOnce(ctx context.Context, steps []sqlstore.Step) (failed int, err error, again bool) {
	if p.conn == nil || p.conn.IsClosed() {
		conn, err := pgx.ConnectConfig(ctx, p.cfg)
		if err != nil {
			return -1, fmt.Errorf("connecting the writer to PostgreSQL: %w", err), false
		}
		p.conn = conn
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	// The transaction's ID, so that a batch whose COMMIT answer is lost can be settled (in doubt).
	b.Queue("SELECT pg_current_xact_id()::text")
	for _, st := range steps {
		if st.Want > 0 {
			b.Queue(expectRows(st.Query, len(st.Args)), append(st.Args[:len(st.Args):len(st.Args)], st.Want)...)
			continue
		}
		b.Queue(st.Query, st.Args...)
	}
	b.Queue("COMMIT")
	results := p.conn.SendBatch(ctx, b)
	var xid string
	failed, err = p.read(results, steps, &xid)
	cerr := results.Close()
	if err == nil {
		if cerr != nil {
			// The COMMIT was answered: the batch is durable whatever went wrong after it. The
			// connection is not to be trusted any longer.
			p.conn.Close(context.Background())
		}
		return -1, nil, false
	}
	if statementFailed(err) {
		// PostgreSQL refused a statement and skipped the rest: the transaction is open, aborted.
		p.abandon(ctx)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == errRowsCode {
			err = fmt.Errorf("%w: %s", sqlstore.ErrRows, pe.Message)
		}
		return failed, err, false
	}
	// The connection failed: the batch fails as a whole, unless PostgreSQL says how it ended.
	p.conn.Close(context.Background())
	if xid == "" {
		return -1, err, true // not even begun
	}
	switch p.settle(ctx, xid) {
	case "committed":
		return -1, nil, false
	case "aborted":
		return -1, err, true
	}
	return -1, fmt.Errorf("the outcome of the batch is unknown (transaction %s): %w", xid, err), false
}

// statementFailed reports an error PostgreSQL gave for a statement, the connection still usable:
// the batch's transaction is aborted and the statement's write is at fault. Anything else (the
// connection lost, the server shutting down or terminating it) leaves the batch in doubt.
func statementFailed(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Severity != "FATAL" && pe.Severity != "PANIC" && !strings.HasPrefix(pe.Code, "57P") && !strings.HasPrefix(pe.Code, "08")
}

// settle asks PostgreSQL, on a new connection, how transaction xid ended: "committed", "aborted",
// or "" when it cannot tell within a few seconds (still running, or the server unreachable).
func (p *pipeline) settle(ctx context.Context, xid string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, p.cfg)
	if err != nil {
		return ""
	}
	defer conn.Close(context.Background())
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var status *string
		if err := conn.QueryRow(ctx, "SELECT pg_xact_status($1::text::xid8)", xid).Scan(&status); err != nil || status == nil {
			return ""
		}
		if *status != "in progress" {
			return *status
		}
		select {
		case <-ctx.Done():
			return ""
		case <-tick.C:
		}
	}
}

// read takes the pipeline's results in order and stops at the first failure.
func (p *pipeline) read(results pgx.BatchResults, steps []sqlstore.Step, xid *string) (int, error) {
	if _, err := results.Exec(); err != nil {
		return -1, err
	}
	if err := results.QueryRow().Scan(xid); err != nil {
		return -1, err
	}
	for i, st := range steps {
		var err error
		switch {
		case st.Seq != nil:
			err = results.QueryRow().Scan(st.Seq)
		case st.Want > 0:
			var n int64
			err = results.QueryRow().Scan(&n)
		default:
			_, err = results.Exec()
		}
		if err != nil {
			return i, err
		}
	}
	if _, err := results.Exec(); err != nil {
		return -1, err
	}
	return -1, nil
}

// abandon ends a failed batch's transaction (PostgreSQL skipped everything after the failure, the
// COMMIT included); a connection that cannot is closed and the next batch opens another.
func (p *pipeline) abandon(ctx context.Context) {
	if p.conn.IsClosed() {
		return
	}
	if _, err := p.conn.Exec(ctx, "ROLLBACK"); err != nil {
		p.conn.Close(context.Background())
	}
}

func (p *pipeline) Close() error {
	if p.conn == nil {
		return nil
	}
	return p.conn.Close(context.Background())
}

// expectRows wraps an INSERT, UPDATE or DELETE with n parameters so that it returns how many rows it
// changed, and raises (SG001) unless that is the number in parameter n+1.
func expectRows(query string, n int) string {
	var b strings.Builder
	b.WriteString("WITH changed AS (")
	b.WriteString(query)
	b.WriteString(" RETURNING 1) SELECT signet_expect_rows(count(*), $")
	b.WriteString(strconv.Itoa(n + 1))
	b.WriteString(") FROM changed")
	return b.String()
}

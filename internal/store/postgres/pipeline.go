package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

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
	if p.conn == nil || p.conn.IsClosed() {
		conn, err := pgx.ConnectConfig(ctx, p.cfg)
		if err != nil {
			return -1, fmt.Errorf("connecting the writer to PostgreSQL: %w", err)
		}
		p.conn = conn
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	for _, st := range steps {
		if st.Want > 0 {
			b.Queue(expectRows(st.Query, len(st.Args)), append(st.Args[:len(st.Args):len(st.Args)], st.Want)...)
			continue
		}
		b.Queue(st.Query, st.Args...)
	}
	b.Queue("COMMIT")
	results := p.conn.SendBatch(ctx, b)
	failed, err := p.read(results, steps)
	if cerr := results.Close(); err == nil && cerr != nil {
		failed, err = -1, cerr
	}
	if err != nil {
		p.abandon(ctx)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == errRowsCode {
		err = fmt.Errorf("%w: %s", sqlstore.ErrRows, pe.Message)
	}
	return failed, err
}

// read takes the pipeline's results in order and stops at the first failure.
func (p *pipeline) read(results pgx.BatchResults, steps []sqlstore.Step) (int, error) {
	if _, err := results.Exec(); err != nil {
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

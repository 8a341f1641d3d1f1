package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/signet-id/signet/internal/store"
)

// ErrClosed is returned for work submitted after Close.
var ErrClosed = errors.New("store is closed")

// Write is one caller's share of a group commit: its statements, run in order, then its audit
// events, chained onto the writer's audit chain. All of it is durable when Batcher.Do returns nil;
// none of it when Do returns an error.
type Write struct {
	What  string // names the write in errors ("token tk_…")
	Stmts []Stmt
	Audit []*store.AuditEvent
}

// Stmt is a statement of a Write, with "?" placeholders.
type Stmt struct {
	Query string
	Args  []any
	// Want, when > 0, is how many rows the statement must change; with another count the write fails
	// with Refuse's error (ErrConflict when Refuse is nil).
	Want   int64
	Refuse func(ctx context.Context) error
}

// Step is a statement as a Committer runs it: in the dialect's placeholder style.
type Step struct {
	Query string
	Args  []any
	// Want, when > 0, is how many rows the statement must change; another count is the step's
	// failure, reported as ErrRows.
	Want int64
	// Seq, when set, receives the one value the statement returns (RETURNING seq).
	Seq *int64
}

// ErrRows is a step's failure when it changed another number of rows than it wants.
var ErrRows = errors.New("the statement changed an unexpected number of rows")

// Committer runs one batch transaction: every step in order, committed only when each succeeded.
// It returns the index of the first step that failed, with its error (nothing is committed), or -1
// when every step ran, with the commit's error. Only the writer goroutine calls it.
type Committer interface {
	Commit(ctx context.Context, steps []Step) (failed int, err error)
	Close() error
}

// commitDeadline bounds one batch transaction: a database that stops answering fails the batch's
// callers (503) instead of holding them.
const commitDeadline = 30 * time.Second

// Batcher commits concurrent small writes together (group commit): one writer goroutine takes what
// is queued, runs it as one transaction through its Committer (PostgreSQL: one pipelined round
// trip), commits once and answers each caller with its own result. A write that fails is taken out
// and the others are committed without it: each write succeeds or fails on its own.
//
// The writer owns one audit chain and keeps its head in memory. The batch's first statement moves
// the chain's registered head from the one the writer knows to the one the batch ends with; when
// another writer moved it first (the head was stale), that statement changes no row, the writer
// reloads the head and tries again.
type Batcher struct {
	c      Committer
	max    int
	reqs   chan *batchItem
	chain  *chain
	q      func(string) string
	mapErr func(error, string) error

	closeOnce sync.Once
	done      chan struct{}
	stopped   chan struct{}

	commits, items atomic.Uint64 // transactions committed, and the writes they carried
}

type batchItem struct {
	ctx    context.Context
	w      *Write
	result chan error
}

// Queued returns how many writes wait for the writer.
func (b *Batcher) Queued() int { return len(b.reqs) }

// Stats returns how many transactions the batcher committed and how many writes they carried:
// items/commits is the average batch, the fsyncs (and round trips) saved.
func (b *Batcher) Stats() (commits, items uint64) { return b.commits.Load(), b.items.Load() }

// Do queues w and waits until it is committed (nil) or has failed. Once w is queued, Do answers
// only with the truth: a caller whose context ends is still told whether w committed (the writer
// does not start writes whose context has ended, and a batch is bounded by commitDeadline).
func (b *Batcher) Do(ctx context.Context, w *Write) error {
	if len(w.Audit) > 0 && b.chain == nil {
		return errNoAuditKey
	}
	it := &batchItem{ctx: ctx, w: w, result: make(chan error, 1)}
	select {
	case b.reqs <- it:
	case <-b.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-it.result:
		return err
	case <-b.stopped:
		// The writer answered everything it took before stopping; a write queued as Close ran was
		// not taken and never will be.
		select {
		case err := <-it.result:
			return err
		default:
			return ErrClosed
		}
	}
}

func (b *Batcher) run() {
	defer close(b.stopped)
	for {
		var first *batchItem
		select {
		case first = <-b.reqs:
		case <-b.done:
			b.drain()
			return
		}
		b.commit(b.collect(first))
	}
}

// linger is how long a batch that found others queued waits for more: under load it lets one
// commit serve many requests; a lone request never waits.
const linger = 200 * time.Microsecond

// collect takes first and everything already queued; when that is more than one request (there is
// concurrency), it waits up to linger for stragglers.
func (b *Batcher) collect(first *batchItem) []*batchItem {
	items := []*batchItem{first}
	for len(items) < b.max {
		select {
		case it := <-b.reqs:
			items = append(items, it)
			continue
		default:
		}
		break
	}
	if len(items) == 1 || len(items) >= b.max {
		return items
	}
	t := time.NewTimer(linger)
	defer t.Stop()
	for len(items) < b.max {
		select {
		case it := <-b.reqs:
			items = append(items, it)
		case <-t.C:
			return items
		}
	}
	return items
}

// drain answers what was queued when Close was called.
func (b *Batcher) drain() {
	for {
		select {
		case it := <-b.reqs:
			b.commit([]*batchItem{it})
		default:
			return
		}
	}
}

// commit settles every item: committed, or failed with its own error.
func (b *Batcher) commit(items []*batchItem) {
	live := items[:0:0]
	for _, it := range items {
		if err := it.ctx.Err(); err != nil {
			it.result <- err
			continue
		}
		live = append(live, it)
	}
	for len(live) > 0 {
		n := b.attempt(live, 0)
		live = live[n:]
	}
}

// maxStaleHeads is how often in a row a batch may find its chain's head moved by another writer
// before its audited writes fail: writers share a chain only by accident (two with one name), and
// then take turns.
const maxStaleHeads = 8

// attempt runs items as one transaction and settles a prefix of them: all on success; on a failing
// write, that write (with its error) and the writes before it, which are run again without it. The
// writes after it did not run: the caller tries them next. So a write runs at most twice however
// many of its neighbours fail. It returns how many items it settled.
func (b *Batcher) attempt(items []*batchItem, stale int) int {
	ctx, cancel := context.WithTimeout(context.Background(), commitDeadline)
	defer cancel()
	steps, owners, head, err := b.plan(ctx, items)
	if err != nil {
		for _, it := range items {
			it.result <- err
		}
		return len(items)
	}
	failed, err := b.c.Commit(ctx, steps)
	switch {
	case failed < 0 && err == nil:
		if b.chain != nil && head != nil {
			b.chain.advance(*head)
			b.chain.locate(ctx, items)
		}
		b.commits.Add(1)
		b.items.Add(uint64(len(items)))
		for _, it := range items {
			it.result <- nil
		}
		return len(items)
	case failed < 0:
		// The transaction as a whole failed (begin, commit, connection): every write fails. Whether
		// the commit reached the disk is unknown, so the chain's head is read again before the next.
		b.chain.forget()
		for _, it := range items {
			it.result <- err
		}
		return len(items)
	case owners[failed].item < 0:
		// The chain's head moved under us: another writer appends to this chain too.
		b.chain.forget()
		if stale+1 < maxStaleHeads {
			return b.attempt(items, stale+1)
		}
		// The audited writes give up; the others are not the chain's business and go on.
		err = fmt.Errorf("append audit event: the audit chain %q is written by another writer at the same time: %w", b.chain.id, store.ErrConflict)
		var rest []*batchItem
		for _, it := range items {
			if len(it.w.Audit) > 0 {
				it.result <- err
			} else {
				rest = append(rest, it)
			}
		}
		for len(rest) > 0 {
			rest = rest[b.attempt(rest, 0):]
		}
		return len(items)
	}
	bad := owners[failed].item
	if owners[failed].stmt < 0 {
		b.chain.forget() // an audit insert failed: read the head again rather than trust it
	}
	items[bad].result <- b.itemError(items[bad], owners[failed].stmt, err)
	if bad > 0 {
		for settled := 0; settled < bad; {
			settled += b.attempt(items[settled:bad], 0)
		}
	}
	return bad + 1
}

// itemError is a failed write's error: its statement's Refuse for an unexpected row count, else the
// database's error as a store error (a unique violation is ErrConflict).
func (b *Batcher) itemError(it *batchItem, stmt int, err error) error {
	if errors.Is(err, ErrRows) {
		if stmt >= 0 && it.w.Stmts[stmt].Refuse != nil {
			return it.w.Stmts[stmt].Refuse(it.ctx)
		}
		return fmt.Errorf("%s: %w", it.w.What, store.ErrConflict)
	}
	return b.mapErr(err, it.w.What)
}

// owner is what a step belongs to: an item and its statement (-1: one of its audit events), or no
// item (-1: the chain's guard).
type owner struct{ item, stmt int }

// plan turns items into one transaction's steps, chaining their audit events after the chain's head.
// owners[i] says which item and statement step i belongs to; head is the chain's head after the
// batch (nil when no item has audit events).
func (b *Batcher) plan(ctx context.Context, items []*batchItem) (steps []Step, owners []owner, head *chainHead, err error) {
	audited := false
	for _, it := range items {
		audited = audited || len(it.w.Audit) > 0
	}
	var cur chainHead
	if audited {
		if cur, err = b.chain.current(ctx); err != nil {
			return nil, nil, nil, err
		}
		steps, owners = append(steps, Step{}), append(owners, owner{-1, -1}) // the guard, filled in below
	}
	start := cur
	for i, it := range items {
		for j, s := range it.w.Stmts {
			steps = append(steps, Step{Query: b.q(s.Query), Args: s.Args, Want: s.Want})
			owners = append(owners, owner{i, j})
		}
		for _, e := range it.w.Audit {
			cur = b.chain.link(cur, e)
			steps = append(steps, b.chain.insert(e))
			owners = append(owners, owner{i, -1})
		}
	}
	if audited {
		steps[0] = b.chain.guard(start, cur)
		head = &cur
	}
	return steps, owners, head, nil
}

// Close stops accepting work, finishes what is queued and waits for the writer.
func (b *Batcher) Close() {
	b.closeOnce.Do(func() { close(b.done) })
	<-b.stopped
	b.c.Close()
}

// --- the writer's audit chain ---------------------------------------------------------------------

// chain is the audit chain a writer appends to: its name, the audit key, and the head as of the
// writer's last commit (read from the database when unknown).
type chain struct {
	id    string
	key   []byte
	q     func(string) string
	read  func(ctx context.Context, chain string) (chainHead, error)
	seqOf func(ctx context.Context, chain string, position int64) (int64, error)
	known bool
	head  chainHead
}

type chainHead struct {
	position int64
	hash     []byte
}

func (c *chain) current(ctx context.Context) (chainHead, error) {
	if !c.known {
		h, err := c.read(ctx, c.id)
		if err != nil {
			return chainHead{}, fmt.Errorf("audit chain head: %w", err)
		}
		if h.position == 0 {
			h.hash = store.ChainGenesis(c.key, c.id)
		}
		c.head, c.known = h, true
	}
	return c.head, nil
}

func (c *chain) advance(h chainHead) { c.head, c.known = h, true }

// locate fills in the sequence numbers of committed events whose insert did not report one (a
// batch whose COMMIT answer was lost and that PostgreSQL said committed).
func (c *chain) locate(ctx context.Context, items []*batchItem) {
	for _, it := range items {
		for _, e := range it.w.Audit {
			if e.Seq == 0 {
				e.Seq, _ = c.seqOf(ctx, e.Chain, e.Position)
			}
		}
	}
}

func (c *chain) forget() {
	if c != nil {
		c.known = false
	}
}

// link places e after head and returns the new head.
func (c *chain) link(head chainHead, e *store.AuditEvent) chainHead {
	e.Chain, e.Position = c.id, head.position+1
	// Fields are text in every backend: what a request put there (a subject with a NUL byte, invalid
	// UTF-8) is stored with U+FFFD in its place rather than refused, so the attempt is still audited.
	e.Type, e.Actor, e.Subject, e.Client = storable(e.Type), storable(e.Actor), storable(e.Subject), storable(e.Client)
	e.At, e.PrevHash = e.At.Truncate(time.Microsecond).UTC(), bytes.Clone(head.hash)
	if len(e.Details) == 0 {
		e.Details = []byte("{}")
	}
	e.Hash = store.ChainHash(c.key, e.PrevHash, e)
	return chainHead{position: e.Position, hash: e.Hash}
}

// storable returns s as valid UTF-8 without NUL bytes (PostgreSQL's text holds neither).
func storable(s string) string {
	if utf8.ValidString(s) && !strings.Contains(s, "\x00") {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func (c *chain) insert(e *store.AuditEvent) Step {
	return Step{
		Query: c.q(`INSERT INTO audit_events (chain, chain_seq, at, type, actor, subject, client, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`),
		Args:  []any{e.Chain, e.Position, ts(e.At), e.Type, e.Actor, e.Subject, e.Client, string(e.Details), e.PrevHash, e.Hash},
		Seq:   &e.Seq,
	}
}

// guard moves the chain's registered head from `from` to `to`, creating the registration for a new
// chain; it changes no row when the registered head is not `from` (another writer moved it).
func (c *chain) guard(from, to chainHead) Step {
	now := ts(time.Now())
	return Step{
		Query: c.q(`INSERT INTO audit_chains (id, chain_seq, hash, opened_at, updated_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET chain_seq = excluded.chain_seq, hash = excluded.hash, updated_at = excluded.updated_at
			WHERE audit_chains.chain_seq = ?`),
		Args: []any{c.id, to.position, to.hash, now, now, from.position},
		Want: 1,
	}
}

// auditSeq reads the sequence number of the event at a position of a chain.
func (s *Store) auditSeq(ctx context.Context, chain string, position int64) (int64, error) {
	var seq int64
	err := s.R.QueryRowContext(ctx, s.q(`SELECT seq FROM audit_events WHERE chain = ? AND chain_seq = ?`), chain, position).Scan(&seq)
	return seq, err
}

// readChainHead reads where a chain's writer continues: the registered head, or for a chain not
// registered (yet) its newest event.
func (s *Store) readChainHead(ctx context.Context, chain string) (chainHead, error) {
	var h chainHead
	err := s.R.QueryRowContext(ctx, s.q(`SELECT chain_seq, hash FROM audit_chains WHERE id = ?`), chain).Scan(&h.position, &h.hash)
	if !errors.Is(err, sql.ErrNoRows) {
		return h, err
	}
	err = s.R.QueryRowContext(ctx, s.q(`SELECT chain_seq, hash FROM audit_events WHERE chain = ? ORDER BY chain_seq DESC LIMIT 1`), chain).Scan(&h.position, &h.hash)
	if errors.Is(err, sql.ErrNoRows) {
		return chainHead{}, nil
	}
	return h, err
}

// --- the database/sql committer (SQLite) ----------------------------------------------------------

// sqlCommitter runs a batch statement by statement on a database/sql pool, each statement prepared
// once (SQLite answers in-process: round trips cost nothing there).
type sqlCommitter struct {
	db    *sql.DB
	stmts map[string]*sql.Stmt
}

// NewSQLCommitter returns the committer that runs batches through database/sql.
func NewSQLCommitter(db *sql.DB) Committer {
	return &sqlCommitter{db: db, stmts: map[string]*sql.Stmt{}}
}

func (c *sqlCommitter) Commit(ctx context.Context, steps []Step) (int, error) {
	// Prepare outside the transaction: on SQLite the one writer connection is busy inside it.
	for i, st := range steps {
		if _, ok := c.stmts[st.Query]; ok {
			continue
		}
		p, err := c.db.PrepareContext(ctx, st.Query)
		if err != nil {
			return i, err
		}
		c.stmts[st.Query] = p
	}
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return -1, err
	}
	for i, st := range steps {
		if err := runStep(ctx, tx.StmtContext(ctx, c.stmts[st.Query]), st); err != nil {
			tx.Rollback()
			return i, err
		}
	}
	return -1, tx.Commit()
}

func runStep(ctx context.Context, stmt *sql.Stmt, st Step) error {
	if st.Seq != nil {
		return stmt.QueryRowContext(ctx, st.Args...).Scan(st.Seq)
	}
	res, err := stmt.ExecContext(ctx, st.Args...)
	if err != nil || st.Want <= 0 {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != st.Want {
		return fmt.Errorf("%w: %d, not %d", ErrRows, n, st.Want)
	}
	return nil
}

func (c *sqlCommitter) Close() error {
	for _, st := range c.stmts {
		st.Close()
	}
	return nil
}

package pgaudit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"

	"github.com/gpgate/gpgate/audit"
)

var snapshot = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

// row is one audit_log row as stored.
type row struct {
	seq                                      int64
	hash, record                             []byte
	recordedNS                               int64
	pid, client, pract, ods, outcome, action *string
	breakGlass                               bool
}

const rowCols = "seq, hash, record, recorded_ns, patient_id, client_id, practitioner, consumer_ods, outcome, action, break_glass"

func scanRow(rows pgx.Rows) (row, error) {
	var r row
	err := rows.Scan(&r.seq, &r.hash, &r.record, &r.recordedNS, &r.pid, &r.client, &r.pract, &r.ods, &r.outcome, &r.action, &r.breakGlass)
	return r, err
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// columns checks the row's search columns against its record (whose
// chain hash is sum): a row edited to hide or misfile an entry.
func (r *row) columns(sum [32]byte) string {
	e, err := audit.Decode(sum, r.record)
	if err != nil {
		return fmt.Sprintf("entry %d: record unreadable", r.seq)
	}
	if e.Recorded.UnixNano() != r.recordedNS || e.PatientID != str(r.pid) || e.ClientID != str(r.client) || e.Practitioner != str(r.pract) ||
		e.ConsumerODS != str(r.ods) || e.Outcome != str(r.outcome) || e.Action != str(r.action) || e.BreakGlass != r.breakGlass {
		return fmt.Sprintf("entry %d: its search columns differ from its record (edited to hide or misfile it)", r.seq)
	}
	return ""
}

// check verifies one row after prev (want: its expected sequence number)
// and returns its chain hash, or what is wrong with it.
func (r *row) check(want uint64, prev [32]byte) ([32]byte, string) {
	sum, bad := audit.CheckEntry(want, uint64(r.seq), prev, r.hash, r.record)
	if bad == "" {
		bad = r.columns(sum)
	}
	return sum, bad
}

// openCheck is the fast check Open runs, on one snapshot: the head row
// matches the newest entry; with a key, the newest checkpoint verifies
// and matches its entry, the chain verifies from it to the end, and the
// log is not behind this node's exported head.
func (l *Log) openCheck(ctx context.Context) error {
	return pgx.BeginTxFunc(ctx, l.pool, snapshot, func(tx pgx.Tx) error {
		var headSeq int64
		var headHash []byte
		if err := tx.QueryRow(ctx, "SELECT seq, hash FROM audit_head WHERE id = 1").Scan(&headSeq, &headHash); err != nil {
			return fmt.Errorf("no chain head: %w", err)
		}
		var last int64
		var lastHash []byte
		err := tx.QueryRow(ctx, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").Scan(&last, &lastHash)
		if errors.Is(err, pgx.ErrNoRows) {
			last, lastHash = 0, make([]byte, 32)
		} else if err != nil {
			return err
		}
		if headSeq != last {
			return fmt.Errorf("the chain head names entry %d but the log ends at %d: entries removed or added behind the writers' back", headSeq, last)
		}
		if !bytes.Equal(headHash, lastHash) {
			return fmt.Errorf("the chain head's hash differs from entry %d's", last)
		}
		l.st.Head.Store(uint64(last))
		if l.key == nil {
			return nil
		}
		stored := func(seq int64) ([32]byte, bool, error) {
			var h [32]byte
			if seq == 0 {
				return h, true, nil
			}
			var b []byte
			err := tx.QueryRow(ctx, "SELECT hash FROM audit_log WHERE seq = $1", seq).Scan(&b)
			if errors.Is(err, pgx.ErrNoRows) || len(b) != 32 {
				return h, false, nil
			}
			copy(h[:], b)
			return h, err == nil, err
		}
		from, prev := int64(0), [32]byte{}
		var cs int64
		var line string
		err = tx.QueryRow(ctx, "SELECT seq, line FROM audit_checkpoint ORDER BY seq DESC LIMIT 1").Scan(&cs, &line)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if last > 0 {
				return fmt.Errorf("the log holds %d entries but no signed checkpoint: an existing log opened with an audit key for the first time, or its checkpoints were removed", last)
			}
		case err != nil:
			return err
		default:
			h, err := audit.ParseHead([]byte(line))
			if err != nil {
				return fmt.Errorf("the checkpoint at entry %d is unreadable: %w", cs, err)
			}
			if int64(h.Seq) != cs {
				return fmt.Errorf("the checkpoint stored at entry %d names entry %d", cs, h.Seq)
			}
			if err := h.Verify(l.keys); err != nil {
				return fmt.Errorf("the checkpoint at entry %d: %w", cs, err)
			}
			if cs > last {
				return fmt.Errorf("log truncated: the newest signed checkpoint names entry %d but the log ends at %d", cs, last)
			}
			at, ok, err := stored(cs)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("entry %d, named by the newest checkpoint, is missing", cs)
			}
			if at != h.Hash {
				return fmt.Errorf("entry %d does not match its signed checkpoint: entries up to it were rewritten and re-chained", cs)
			}
			from, prev = cs, h.Hash
			if cs > 0 {
				before, ok, err := stored(cs - 1)
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("entry %d is missing (deleted)", cs-1)
				}
				from, prev = cs-1, before
			}
		}
		rows, err := tx.Query(ctx, "SELECT "+rowCols+" FROM audit_log WHERE seq > $1 ORDER BY seq", from)
		if err != nil {
			return err
		}
		want := uint64(from) + 1
		for rows.Next() {
			r, err := scanRow(rows)
			if err != nil {
				rows.Close()
				return err
			}
			sum, bad := r.check(want, prev)
			if bad != "" {
				rows.Close()
				return errors.New(bad)
			}
			prev = sum
			want++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if l.headFile == "" {
			return nil
		}
		h, err := audit.ReadHeadFile(l.headFile)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// a node that has not yet signed a checkpoint of its own has no
			// head file: in a cluster that is a new node, not a truncation
			return nil
		case err != nil:
			return fmt.Errorf("the exported head is unreadable: %w", err)
		}
		if err := h.Verify(l.keys); err != nil {
			return fmt.Errorf("the exported head %s: %w", l.headFile, err)
		}
		if int64(h.Seq) > last {
			return fmt.Errorf("the log is behind this node's exported head: the head names entry %d but the log ends at %d (tail truncated, or the database restored from an older copy)", h.Seq, last)
		}
		at, ok, err := stored(int64(h.Seq))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("entry %d, named by the exported head, is missing", h.Seq)
		}
		if at != h.Hash {
			return fmt.Errorf("entry %d does not match the exported head: entries up to it were rewritten", h.Seq)
		}
		return nil
	})
}

// Verify is VerifyWith the log's own keys and head file.
func (l *Log) Verify(ctx context.Context) (audit.VerifyReport, error) {
	return l.VerifyWith(ctx, audit.VerifyOptions{})
}

// VerifyWith walks the whole log, on one snapshot, as the bbolt log's
// VerifyWith does (edited, deleted, swapped, re-chained entries; tail
// truncation against checkpoints, the exported head and the chain head),
// and also checks every entry's search columns against its record.
func (l *Log) VerifyWith(ctx context.Context, vo audit.VerifyOptions) (audit.VerifyReport, error) {
	var rep audit.VerifyReport
	err := pgx.BeginTxFunc(ctx, l.pool, snapshot, func(tx pgx.Tx) error {
		type cpRow struct {
			seq  uint64
			line []byte
		}
		var cps []cpRow
		crows, err := tx.Query(ctx, "SELECT seq, line FROM audit_checkpoint ORDER BY seq")
		if err != nil {
			return err
		}
		for crows.Next() {
			var s int64
			var line string
			if err := crows.Scan(&s, &line); err != nil {
				crows.Close()
				return err
			}
			cps = append(cps, cpRow{uint64(s), []byte(line)})
		}
		crows.Close()
		if err := crows.Err(); err != nil {
			return err
		}
		cv := audit.NewChainVerifier(vo, l.keys, l.headFile, func() (uint64, []byte, bool, string) {
			if len(cps) == 0 {
				return 0, nil, false, ""
			}
			c := cps[0]
			cps = cps[1:]
			return c.seq, c.line, true, ""
		})
		rows, err := tx.Query(ctx, "SELECT "+rowCols+" FROM audit_log ORDER BY seq")
		if err != nil {
			return err
		}
		for n := 1; rows.Next() && !cv.Broken(); n++ {
			if n&1023 == 0 {
				if err := ctx.Err(); err != nil {
					rows.Close()
					return err
				}
			}
			r, err := scanRow(rows)
			if err != nil {
				rows.Close()
				return err
			}
			if !cv.Entry(uint64(r.seq), r.hash, r.record, r.columns) {
				break
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var hr audit.HeadRecord
		var hseq int64
		if err := tx.QueryRow(ctx, "SELECT seq, hash FROM audit_head WHERE id = 1").Scan(&hseq, &hr.Hash); err == nil {
			hr.Present, hr.Seq = true, uint64(hseq)
			hr.Malformed = hseq < 0 || len(hr.Hash) != 32
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		var superseded int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM audit_checkpoint_superseded").Scan(&superseded); err != nil {
			return err
		}
		rep = cv.Finish(hr, superseded)
		return nil
	})
	return rep, err
}

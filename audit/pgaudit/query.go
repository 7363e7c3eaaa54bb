package pgaudit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gpgate/gpgate/audit"
	"github.com/gpgate/gpgate/fhir"
)

// where builds the SQL condition of f over audit_log's search columns
// (the same predicates as audit.Filter.Matches).
func where(f *audit.Filter) (string, []any, bool) {
	var conds []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	patient := f.Patient
	if id, ok := strings.CutPrefix(f.Entity, "Patient/"); ok {
		if patient != "" && patient != id {
			return "", nil, false
		}
		patient = id
	} else if f.Entity != "" {
		return "", nil, false // entries name only patients as entities
	}
	if patient != "" {
		conds = append(conds, "patient_id = "+arg(patient))
	}
	if f.Agent != "" {
		a := arg(f.Agent)
		conds = append(conds, "(client_id = "+a+" OR practitioner = "+a+" OR consumer_ods = "+a+")")
	}
	if !f.Since.IsZero() {
		conds = append(conds, "recorded_ns >= "+arg(f.Since.UnixNano()))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "recorded_ns < "+arg(f.Until.UnixNano()))
	}
	if f.Outcome != "" {
		conds = append(conds, "outcome = "+arg(f.Outcome))
	}
	if f.Action != "" {
		conds = append(conds, "action = "+arg(f.Action))
	}
	if f.BreakGlassOnly {
		conds = append(conds, "break_glass")
	}
	if len(conds) == 0 {
		return "true", args, true
	}
	return strings.Join(conds, " AND "), args, true
}

// QueryPage returns one page of the entries matching f, newest first, the
// total number of matches and the cursor of the next page (as the bbolt
// log does), from one snapshot of the log.
func (l *Log) QueryPage(ctx context.Context, f audit.Filter) (audit.Page, error) {
	count := f.Count
	if count <= 0 {
		count = fhir.DefaultCount
	}
	count = min(count, fhir.MaxCount)
	if f.TotalOnly {
		count = 0
	}
	cond, args, ok := where(&f)
	if !ok {
		return audit.Page{}, nil
	}
	var p audit.Page
	err := pgx.BeginTxFunc(ctx, l.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM audit_log WHERE "+cond, args...).Scan(&p.Total); err != nil {
			return err
		}
		if count == 0 || p.Total == 0 {
			return nil
		}
		q := "SELECT hash, record FROM audit_log WHERE " + cond
		a := append([]any(nil), args...)
		if f.Before != 0 {
			a = append(a, int64(f.Before))
			q += " AND seq < $" + strconv.Itoa(len(a))
		}
		a = append(a, f.Offset, count+1)
		q += fmt.Sprintf(" ORDER BY seq DESC OFFSET $%d LIMIT $%d", len(a)-1, len(a))
		rows, err := tx.Query(ctx, q, a...)
		if err != nil {
			return err
		}
		es, err := scanEntries(rows)
		if err != nil {
			return err
		}
		if len(es) > count {
			es = es[:count]
			p.Next = es[count-1].Seq
		}
		p.Entries = es
		return nil
	})
	if err != nil {
		return audit.Page{}, fhir.Internal(fmt.Errorf("pgaudit: query: %w", err))
	}
	return p, nil
}

// Query is QueryPage's entries and total.
func (l *Log) Query(ctx context.Context, f audit.Filter) ([]audit.Entry, int, error) {
	p, err := l.QueryPage(ctx, f)
	return p.Entries, p.Total, err
}

// Get returns the entry with sequence number seq.
func (l *Log) Get(ctx context.Context, seq uint64) (audit.Entry, bool, error) {
	var hash, record []byte
	err := l.pool.QueryRow(ctx, "SELECT hash, record FROM audit_log WHERE seq = $1", int64(seq)).Scan(&hash, &record)
	if errors.Is(err, pgx.ErrNoRows) {
		return audit.Entry{}, false, nil
	}
	if err != nil {
		return audit.Entry{}, false, fhir.Internal(fmt.Errorf("pgaudit: get: %w", err))
	}
	e, err := decode(hash, record)
	if err != nil {
		return audit.Entry{}, false, fhir.Internal(err)
	}
	return e, true, nil
}

// Export writes the AuditEvents recorded at or after since (all when zero)
// as NDJSON, oldest first, from one snapshot, and returns how many.
func (l *Log) Export(ctx context.Context, w io.Writer, since time.Time) (int, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	n := 0
	var from int64
	if !since.IsZero() {
		from = since.UnixNano()
	}
	err := pgx.BeginTxFunc(ctx, l.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT hash, record FROM audit_log WHERE recorded_ns >= $1 ORDER BY seq", from)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var hash, record []byte
			if err := rows.Scan(&hash, &record); err != nil {
				return err
			}
			e, err := decode(hash, record)
			if err != nil {
				return err
			}
			if _, err := bw.Write(audit.Render(e)); err != nil {
				return err
			}
			if err := bw.WriteByte('\n'); err != nil {
				return err
			}
			n++
		}
		return rows.Err()
	})
	if err != nil {
		return n, err
	}
	return n, bw.Flush()
}

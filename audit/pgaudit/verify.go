package pgaudit

import (
	"bytes"
	"context"
	"crypto/ed25519"
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

// check verifies one row after prev (want: its expected sequence number)
// and returns its chain hash, or what is wrong with it.
func (r *row) check(want uint64, prev [32]byte) ([32]byte, string) {
	var sum [32]byte
	if uint64(r.seq) != want {
		return sum, fmt.Sprintf("entry %d is missing (deleted): the next entry is %d", want, r.seq)
	}
	named, _, err := audit.RecordSeq(r.record)
	if err != nil {
		return sum, fmt.Sprintf("entry %d: record unreadable", want)
	}
	if named != want {
		return sum, fmt.Sprintf("entry %d holds the record of entry %d: entries swapped or moved", want, named)
	}
	sum = audit.ChainHash(prev, r.record)
	if !bytes.Equal(sum[:], r.hash) {
		return sum, fmt.Sprintf("entry %d: hash mismatch: the entry was edited (or the one before it was edited and rehashed)", want)
	}
	e, err := audit.Decode(sum, r.record)
	if err != nil {
		return sum, fmt.Sprintf("entry %d: record unreadable", want)
	}
	if e.Recorded.UnixNano() != r.recordedNS || e.PatientID != str(r.pid) || e.ClientID != str(r.client) || e.Practitioner != str(r.pract) ||
		e.ConsumerODS != str(r.ods) || e.Outcome != str(r.outcome) || e.Action != str(r.action) || e.BreakGlass != r.breakGlass {
		return sum, fmt.Sprintf("entry %d: its search columns differ from its record (edited to hide or misfile it)", want)
	}
	return sum, ""
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
		l.st.head.Store(uint64(last))
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

type brk struct {
	seq uint64
	msg string
}

// VerifyWith walks the whole log, on one snapshot, as the bbolt log's
// VerifyWith does (edited, deleted, swapped, re-chained entries; tail
// truncation against checkpoints, the exported head and the chain head),
// and also checks every entry's search columns against its record.
func (l *Log) VerifyWith(ctx context.Context, vo audit.VerifyOptions) (audit.VerifyReport, error) {
	var rep audit.VerifyReport
	keys := vo.Keys
	if keys == nil {
		keys = l.keys
	}
	if len(keys) == 0 {
		rep.Warnings = append(rep.Warnings, "no audit public key: checkpoint signatures not checked (a re-chained log with re-made checkpoints would pass)")
	}
	var headErr error
	head := vo.Head
	if head == nil {
		path := vo.HeadFile
		if path == "" {
			path = l.headFile
		}
		if path == "" {
			rep.Warnings = append(rep.Warnings, "no exported head: tail truncation after the newest checkpoint cannot be detected")
		} else if h, err := audit.ReadHeadFile(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				headErr = fmt.Errorf("the exported head %s is missing: tail truncation cannot be ruled out", path)
			} else {
				headErr = fmt.Errorf("the exported head is unreadable: %w", err)
			}
		} else {
			head = &h
		}
	}
	var b *brk
	var last uint64
	err := pgx.BeginTxFunc(ctx, l.pool, snapshot, func(tx pgx.Tx) error {
		type cpRow struct {
			seq  uint64
			line string
		}
		var cps []cpRow
		crows, err := tx.Query(ctx, "SELECT seq, line FROM audit_checkpoint ORDER BY seq")
		if err != nil {
			return err
		}
		for crows.Next() {
			var c cpRow
			var s int64
			if err := crows.Scan(&s, &c.line); err != nil {
				crows.Close()
				return err
			}
			c.seq = uint64(s)
			cps = append(cps, c)
		}
		crows.Close()
		if err := crows.Err(); err != nil {
			return err
		}
		anchored := false
		anchorAt := func(kind string, h *audit.Head, seq uint64, sum [32]byte) *brk {
			from := rep.Anchor + 1
			if len(keys) > 0 {
				if err := h.Verify(keys); err != nil {
					msg := fmt.Sprintf("%s at entry %d: %v", kind, seq, err)
					if seq >= from {
						msg += fmt.Sprintf(": entries %d..%d are not anchored", from, seq)
					}
					return &brk{from, msg}
				}
			}
			if h.Hash != sum {
				if seq == 0 {
					return &brk{1, fmt.Sprintf("the %s at entry 0 does not sign the empty log", kind)}
				}
				return &brk{from, fmt.Sprintf("entries %d..%d were rewritten and re-chained: the %s signed at entry %d does not match the chain", from, seq, kind, seq)}
			}
			if len(keys) > 0 {
				rep.Anchor, anchored = seq, true
			}
			return nil
		}
		ci := 0
		at := func(seq uint64, sum [32]byte) *brk {
			for ; ci < len(cps) && cps[ci].seq <= seq; ci++ {
				c := cps[ci]
				if c.seq < seq {
					return &brk{rep.Anchor + 1, fmt.Sprintf("checkpoint at entry %d out of order", c.seq)}
				}
				h, err := audit.ParseHead([]byte(c.line))
				if err != nil {
					return &brk{rep.Anchor + 1, fmt.Sprintf("checkpoint at entry %d unreadable: %v", c.seq, err)}
				}
				if h.Seq != c.seq {
					return &brk{rep.Anchor + 1, fmt.Sprintf("checkpoint stored at entry %d names entry %d: moved", c.seq, h.Seq)}
				}
				if x := anchorAt("checkpoint", &h, c.seq, sum); x != nil {
					return x
				}
				rep.Checkpoints++
			}
			if head != nil && head.Seq == seq {
				if x := anchorAt("exported head", head, seq, sum); x != nil {
					return x
				}
				rep.HeadChecked, rep.Head = true, seq
			}
			return nil
		}
		if b = at(0, [32]byte{}); b != nil {
			return nil
		}
		rows, err := tx.Query(ctx, "SELECT "+rowCols+" FROM audit_log ORDER BY seq")
		if err != nil {
			return err
		}
		prev := [32]byte{}
		want := uint64(1)
		var lastHash []byte
		for rows.Next() {
			if want&1023 == 0 {
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
			sum, bad := r.check(want, prev)
			if bad != "" {
				rows.Close()
				b = &brk{want, bad}
				last = want - 1
				return nil
			}
			if x := at(want, sum); x != nil {
				rows.Close()
				b = x
				last = want - 1
				return nil
			}
			prev, lastHash = sum, r.hash
			last = want
			want++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		switch {
		case ci < len(cps):
			b = &brk{last + 1, fmt.Sprintf("log truncated: a signed checkpoint names entry %d but the log ends at %d", cps[ci].seq, last)}
			return nil
		case head != nil && head.Seq > last:
			b = &brk{last + 1, fmt.Sprintf("log truncated: the exported head names entry %d but the log ends at %d", head.Seq, last)}
			return nil
		}
		var hseq int64
		var hhash []byte
		if err := tx.QueryRow(ctx, "SELECT seq, hash FROM audit_head WHERE id = 1").Scan(&hseq, &hhash); err != nil {
			b = &brk{last, fmt.Sprintf("entry %d: the chain head is missing", last)}
			return nil
		}
		if last == 0 {
			lastHash = make([]byte, 32)
		}
		switch {
		case uint64(hseq) > last:
			b = &brk{last + 1, fmt.Sprintf("log truncated: the chain head names entry %d but the log ends at %d", hseq, last)}
		case uint64(hseq) < last:
			b = &brk{uint64(hseq) + 1, fmt.Sprintf("entries %d..%d lie beyond the chain head: appended behind the writers' back", hseq+1, last)}
		case !bytes.Equal(hhash, lastHash):
			b = &brk{last, fmt.Sprintf("entry %d: the chain head's hash differs", last)}
		}
		if !anchored {
			rep.Anchor = 0
		}
		var superseded int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM audit_checkpoint_superseded").Scan(&superseded); err == nil && superseded > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d checkpoint(s) set aside by an operator override (AcceptUnverified): the audit-override entries say why", superseded))
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	switch {
	case b != nil:
		rep.FirstBroken, rep.Err = b.seq, fmt.Errorf("audit log broken at entry %d: %s", b.seq, b.msg)
		rep.Entries = int(b.seq - 1)
	case headErr != nil:
		rep.Err, rep.Entries = headErr, int(last)
	default:
		rep.Entries = int(last)
	}
	if last > rep.Anchor {
		rep.Unanchored = int(last - rep.Anchor)
	}
	return rep, nil
}

// TrustedKeys returns the public keys this log verifies checkpoints with.
func (l *Log) TrustedKeys() []ed25519.PublicKey { return append([]ed25519.PublicKey(nil), l.keys...) }

package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"go.etcd.io/bbolt"
)

// VerifyReport is the outcome of walking the hash chain.
type VerifyReport struct {
	Entries     int    // entries that verified, from the first
	FirstBroken uint64 // sequence number of the first entry that failed; 0 when the chain holds
	Err         error  // why it failed; nil when the chain holds
}

// OK reports whether the whole chain verified.
func (r VerifyReport) OK() bool { return r.Err == nil }

// Verify walks the log from its first entry and checks that sequence numbers
// run 1, 2, 3, ... without gaps, that every record names its own sequence
// number, that each stored hash is SHA-256(previous hash || record bytes), and
// that the head record matches the last entry (a truncated tail fails at the
// first missing sequence number). A broken chain is reported in VerifyReport;
// the error return is for failures to read the log at all.
func (s *Store) Verify(ctx context.Context) (VerifyReport, error) {
	var rep VerifyReport
	err := s.db.View(func(tx *bbolt.Tx) error {
		var prev [32]byte
		want := uint64(1)
		fail := func(seq uint64, format string, args ...any) {
			rep.FirstBroken = seq
			rep.Err = fmt.Errorf("audit chain broken at %d: "+format, append([]any{seq}, args...)...)
		}
		c := tx.Bucket(bucketLog).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if want&1023 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if len(k) != 8 {
				fail(want, "malformed key")
				return nil
			}
			seq := binary.BigEndian.Uint64(k)
			if seq != want {
				fail(want, "entry missing (next key is %d)", seq)
				return nil
			}
			if len(v) < 34 {
				fail(seq, "record too short")
				return nil
			}
			if named, _, err := recordHead(v[32:]); err != nil || named != seq {
				fail(seq, "record does not name its sequence number")
				return nil
			}
			h := sha256.New()
			h.Write(prev[:])
			h.Write(v[32:])
			var sum [32]byte
			h.Sum(sum[:0])
			if !bytes.Equal(sum[:], v[:32]) {
				fail(seq, "hash mismatch")
				return nil
			}
			prev = sum
			rep.Entries++
			want++
		}
		last := want - 1
		head := tx.Bucket(bucketMeta).Get(keyHead)
		switch {
		case head == nil && last == 0:
		case head == nil:
			fail(last, "head record missing")
		case len(head) != 48:
			fail(last+1, "head record malformed")
		case binary.BigEndian.Uint64(head[:8]) > last:
			fail(last+1, "entry missing (head is %d)", binary.BigEndian.Uint64(head[:8]))
		case binary.BigEndian.Uint64(head[:8]) < last:
			fail(binary.BigEndian.Uint64(head[:8])+1, "entries beyond the head record")
		case !bytes.Equal(head[8:40], prev[:]):
			fail(last, "head hash mismatch")
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	if rep.Err != nil {
		rep.Entries = int(rep.FirstBroken - 1)
	}
	return rep, nil
}

// Export writes the AuditEvents recorded at or after since (all when zero) as
// NDJSON, oldest first, and returns how many it wrote.
func (s *Store) Export(ctx context.Context, w io.Writer, since time.Time) (int, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	n := 0
	var after uint64
	if !since.IsZero() {
		// recorded never decreases along the log: skip straight to since
		err := s.db.View(func(tx *bbolt.Tx) error {
			lb := tx.Bucket(bucketLog)
			if k, _ := lb.Cursor().Last(); k != nil {
				after, _ = seqBefore(lb, binary.BigEndian.Uint64(k), since)
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	err := s.Scan(ctx, after, func(e Entry) error {
		if !since.IsZero() && e.Recorded.Before(since) {
			return nil
		}
		if _, err := bw.Write(Render(e)); err != nil {
			return err
		}
		n++
		return bw.WriteByte('\n')
	})
	if err != nil {
		return n, err
	}
	return n, bw.Flush()
}

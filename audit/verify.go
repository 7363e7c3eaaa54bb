package audit

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"go.etcd.io/bbolt"
)

// VerifyReport is the outcome of walking the hash chain and its anchors.
type VerifyReport struct {
	Entries     int    // entries that verified, from the first (up to the last anchor before a re-chained range)
	FirstBroken uint64 // sequence number of the first entry that failed; 0 when none did
	Err         error  // why verification failed (a precise message naming entries); nil when it held
	Checkpoints int    // checkpoints that matched the chain (and, with keys, whose signature verified)
	Anchor      uint64 // newest entry covered by a verified signed checkpoint or exported head
	Head        uint64 // the exported head's sequence number, when one was checked
	HeadChecked bool   // an exported head was checked
	Unanchored  int    // entries after Anchor: protected by the unkeyed chain only
	Warnings    []string
}

// OK reports whether everything verified.
func (r VerifyReport) OK() bool { return r.Err == nil }

// VerifyOptions says what Verify checks the log against.
type VerifyOptions struct {
	// Keys are the trusted checkpoint public keys; nil: the Store's
	// (Options.Key or KeyFile, and TrustedKeys).
	Keys []ed25519.PublicKey
	// Head is the exported head to check; nil: read HeadFile.
	Head *Head
	// HeadFile is read when Head is nil; "": the Store's Options.HeadFile.
	HeadFile string
}

// chainBreak is where and why the chain failed.
type chainBreak struct {
	seq uint64
	msg string
}

// walkChain verifies the log entries after from (whose chain hash is prev)
// in order to the end of the log (CheckEntry on each), and returns the
// last entry that verified.
func walkChain(ctx context.Context, lb *bbolt.Bucket, from uint64, prev [32]byte) (uint64, *chainBreak, error) {
	want := from + 1
	c := lb.Cursor()
	for k, v := c.Seek(seqKey(want)); k != nil; k, v = c.Next() {
		if want&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return want - 1, nil, err
			}
		}
		if bad := entryShape(want, k, v); bad != "" {
			return want - 1, &chainBreak{want, bad}, nil
		}
		sum, bad := CheckEntry(want, binary.BigEndian.Uint64(k), prev, v[:32], v[32:])
		if bad != "" {
			return want - 1, &chainBreak{want, bad}, nil
		}
		prev = sum
		want++
	}
	return want - 1, nil, nil
}

// entryShape checks what only the bbolt layout can get wrong: an 8-byte
// key, a value of a hash and a record.
func entryShape(want uint64, k, v []byte) string {
	switch {
	case len(k) != 8:
		return fmt.Sprintf("entry %d: malformed key in the log", want)
	case len(v) < 34:
		return fmt.Sprintf("entry %d: record too short", want)
	}
	return ""
}

// Verify is VerifyWith the Store's own keys and head file.
func (s *Store) Verify(ctx context.Context) (VerifyReport, error) {
	return s.VerifyWith(ctx, VerifyOptions{})
}

// VerifyWith walks the whole log from its first entry and detects an edited
// entry (hash mismatch), a deleted one (gap), swapped or moved entries (an
// entry holding another's record), a re-chained range (the chain no longer
// matches a signed checkpoint, or a checkpoint's signature fails: forged
// with another key), and tail truncation (a checkpoint or the exported head
// names an entry beyond the log's end; the head record disagrees with the
// last entry). A failure is reported in VerifyReport, naming the entries;
// the error return is for failures to read the log at all. Without keys or
// an exported head it says, in Warnings, what it could not check.
func (s *Store) VerifyWith(ctx context.Context, vo VerifyOptions) (VerifyReport, error) {
	var rep VerifyReport
	err := s.db.View(func(tx *bbolt.Tx) error {
		lb := tx.Bucket(bucketLog)
		if lb == nil {
			return errors.New("audit: no log in this file")
		}
		var checkpoints CheckpointSource
		if cb := tx.Bucket(bucketCheckpoint); cb != nil {
			cc := cb.Cursor()
			ck, cv := cc.First()
			checkpoints = func() (uint64, []byte, bool, string) {
				k, v := ck, cv
				if k == nil {
					return 0, nil, false, ""
				}
				ck, cv = cc.Next()
				if len(k) != 8 {
					return 0, nil, false, "malformed checkpoint key"
				}
				return binary.BigEndian.Uint64(k), v, true, ""
			}
		}
		cv := NewChainVerifier(vo, s.keys, s.headFile, checkpoints)
		c := lb.Cursor()
		want := uint64(1)
		for k, v := c.Seek(seqKey(1)); k != nil && !cv.Broken(); k, v = c.Next() {
			if want&1023 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if bad := entryShape(want, k, v); bad != "" {
				cv.Break(bad)
				break
			}
			if !cv.Entry(binary.BigEndian.Uint64(k), v[:32], v[32:], nil) {
				break
			}
			want++
		}
		var hr HeadRecord
		if b := tx.Bucket(bucketMeta).Get(keyHead); b != nil {
			hr.Present = true
			if len(b) != 48 {
				hr.Malformed = true
			} else {
				hr.Seq, hr.Hash = binary.BigEndian.Uint64(b[:8]), b[8:40]
			}
		}
		superseded := 0
		if sb := tx.Bucket(bucketSuperseded); sb != nil {
			superseded = sb.Stats().KeyN
		}
		rep = cv.Finish(hr, superseded)
		return nil
	})
	return rep, err
}

// openCheck is the fast check New runs: the head record matches the newest
// entry; with a key, the newest checkpoint's signature verifies and matches
// its entry, the chain verifies from it to the end, and the log is not
// behind the exported head. It reads at most one checkpoint interval of
// entries (Verify walks everything).
func (s *Store) openCheck(ctx context.Context) error {
	return s.db.View(func(tx *bbolt.Tx) error {
		if err := s.loadHead(tx); err != nil {
			return err
		}
		lb := tx.Bucket(bucketLog)
		var last uint64
		var lastHash [32]byte
		if k, v := lb.Cursor().Last(); k != nil {
			if len(k) != 8 || len(v) < 34 {
				return errors.New("the newest log record is malformed")
			}
			last = binary.BigEndian.Uint64(k)
			copy(lastHash[:], v[:32])
		}
		if s.head != last {
			return fmt.Errorf("the head record names entry %d but the log ends at %d: entries removed or added behind the writer's back", s.head, last)
		}
		if last > 0 && s.headHash != lastHash {
			return fmt.Errorf("the head record's hash differs from entry %d's", last)
		}
		if s.key == nil {
			return nil // unanchored: only Verify's full walk checks more
		}
		stored := func(seq uint64) ([32]byte, bool) {
			var h [32]byte
			if seq == 0 {
				return h, true
			}
			v := lb.Get(seqKey(seq))
			if len(v) < 32 {
				return h, false
			}
			copy(h[:], v[:32])
			return h, true
		}
		from, prev := uint64(0), [32]byte{}
		if ck, cv := tx.Bucket(bucketCheckpoint).Cursor().Last(); ck != nil {
			if len(ck) != 8 {
				return errors.New("malformed checkpoint key")
			}
			cs := binary.BigEndian.Uint64(ck)
			h, err := ParseHead(cv)
			if err != nil {
				return fmt.Errorf("the checkpoint at entry %d is unreadable: %w", cs, err)
			}
			if h.Seq != cs {
				return fmt.Errorf("the checkpoint stored at entry %d names entry %d", cs, h.Seq)
			}
			if err := h.Verify(s.keys); err != nil {
				return fmt.Errorf("the checkpoint at entry %d: %w", cs, err)
			}
			if cs > last {
				return fmt.Errorf("log truncated: the newest signed checkpoint names entry %d but the log ends at %d", cs, last)
			}
			if at, ok := stored(cs); !ok {
				return fmt.Errorf("entry %d, named by the newest checkpoint, is missing", cs)
			} else if at != h.Hash {
				return fmt.Errorf("entry %d does not match its signed checkpoint: entries up to it were rewritten and re-chained", cs)
			}
			// walk from the entry before the checkpoint's, so the
			// checkpointed entry's own bytes are checked too
			from, prev = cs, h.Hash
			if cs > 0 {
				if before, ok := stored(cs - 1); ok {
					from, prev = cs-1, before
				} else {
					return fmt.Errorf("entry %d is missing (deleted)", cs-1)
				}
			}
			s.cpSeq = cs
		} else if last > 0 {
			return fmt.Errorf("the log holds %d entries but no signed checkpoint: an existing log opened with an audit key for the first time, or its checkpoints were removed", last)
		}
		if _, brk, err := walkChain(ctx, lb, from, prev); err != nil {
			return err
		} else if brk != nil {
			return errors.New(brk.msg)
		}
		if s.headFile == "" {
			return nil
		}
		h, err := ReadHeadFile(s.headFile)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if last > 0 {
				return fmt.Errorf("the exported head %s is missing but the log holds %d entries", s.headFile, last)
			}
			return nil
		case err != nil:
			return fmt.Errorf("the exported head is unreadable: %w", err)
		}
		if err := h.Verify(s.keys); err != nil {
			return fmt.Errorf("the exported head %s: %w", s.headFile, err)
		}
		if h.Seq > last {
			return fmt.Errorf("the log is behind its exported head: the head names entry %d but the log ends at %d (tail truncated, or the log restored from an older copy)", h.Seq, last)
		}
		if at, ok := stored(h.Seq); !ok {
			return fmt.Errorf("entry %d, named by the exported head, is missing", h.Seq)
		} else if at != h.Hash {
			return fmt.Errorf("entry %d does not match the exported head: entries up to it were rewritten", h.Seq)
		}
		return nil
	})
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

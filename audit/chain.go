package audit

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
)

// The verification every log store runs (the bbolt file here, PostgreSQL
// in pgaudit): the stores read their own storage and feed a
// ChainVerifier; what counts as a break, and how it is reported, is
// decided once, here.

// CheckEntry checks one stored entry as the successor of the entry whose
// chain hash is prev: its sequence number is want (none deleted), its
// record names want (not swapped or moved), and its stored hash is
// SHA-256(prev || record) (not edited). It returns the entry's chain hash,
// or why the entry breaks the chain.
func CheckEntry(want, seq uint64, prev [32]byte, stored, record []byte) ([32]byte, string) {
	if seq != want {
		return [32]byte{}, fmt.Sprintf("entry %d is missing (deleted): the next entry is %d", want, seq)
	}
	named, _, err := recordHead(record)
	if err != nil {
		return [32]byte{}, fmt.Sprintf("entry %d: record unreadable", want)
	}
	if named != want {
		return [32]byte{}, fmt.Sprintf("entry %d holds the record of entry %d: entries swapped or moved", want, named)
	}
	sum := ChainHash(prev, record)
	if !bytes.Equal(sum[:], stored) {
		return sum, fmt.Sprintf("entry %d: hash mismatch: the entry was edited (or the one before it was edited and rehashed)", want)
	}
	return sum, ""
}

// CheckpointSource yields a log's stored checkpoints in sequence order:
// the entry each is stored at and its signed line. ok is false after the
// last; bad, when set, says why the next one cannot be read (a malformed
// key), and ends the walk.
type CheckpointSource func() (seq uint64, line []byte, ok bool, bad string)

// HeadRecord is the writer's own record of the chain's end (the head
// row or key the store keeps beside the log).
type HeadRecord struct {
	Present   bool
	Malformed bool
	Seq       uint64
	Hash      []byte
}

// ChainVerifier walks a whole log: its store calls Entry for each entry in
// order, then Finish. It detects an edited entry, a deleted one, swapped
// or moved entries, a re-chained range (the chain no longer matches a
// signed checkpoint or the exported head, or a signature fails: forged
// with another key), and tail truncation (a checkpoint, the exported head
// or the head record names an entry beyond the log's end).
type ChainVerifier struct {
	keys    []ed25519.PublicKey
	head    *Head
	headErr error
	next    CheckpointSource
	cp      struct {
		seq  uint64
		line []byte
		ok   bool
	}
	rep      VerifyReport
	anchored bool
	prev     [32]byte
	last     uint64
	brk      *chainBreak
}

// NewChainVerifier starts a walk with vo's keys and exported head, falling
// back on the store's own (ownKeys, ownHeadFile); it says in the report's
// warnings what it cannot check without them.
func NewChainVerifier(vo VerifyOptions, ownKeys []ed25519.PublicKey, ownHeadFile string, checkpoints CheckpointSource) *ChainVerifier {
	v := &ChainVerifier{keys: vo.Keys, head: vo.Head, next: checkpoints}
	if v.keys == nil {
		v.keys = ownKeys
	}
	if len(v.keys) == 0 {
		v.rep.Warnings = append(v.rep.Warnings, "no audit public key: checkpoint signatures not checked (a re-chained log with re-made checkpoints would pass)")
	}
	if v.head == nil {
		path := vo.HeadFile
		if path == "" {
			path = ownHeadFile
		}
		if path == "" {
			v.rep.Warnings = append(v.rep.Warnings, "no exported head: tail truncation after the newest checkpoint cannot be detected")
		} else if h, err := ReadHeadFile(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				v.headErr = fmt.Errorf("the exported head %s is missing: tail truncation cannot be ruled out", path)
			} else {
				v.headErr = fmt.Errorf("the exported head is unreadable: %w", err)
			}
		} else {
			v.head = &h
		}
	}
	v.advance()
	v.brk = v.at(0, [32]byte{}) // checkpoints of the empty log
	return v
}

// Broken reports whether the walk has stopped at a break.
func (v *ChainVerifier) Broken() bool { return v.brk != nil }

// Entry checks the next entry (stored is its stored hash); also, when
// set, is the store's own check of the entry given its chain hash (search
// columns against the record), run before the entry can anchor anything.
// It reports false when the chain broke here: stop feeding it.
func (v *ChainVerifier) Entry(seq uint64, stored, record []byte, also func(sum [32]byte) string) bool {
	if v.brk != nil {
		return false
	}
	sum, bad := CheckEntry(v.last+1, seq, v.prev, stored, record)
	if bad == "" && also != nil {
		bad = also(sum)
	}
	if bad != "" {
		v.Break(bad)
		return false
	}
	if b := v.at(seq, sum); b != nil {
		v.brk = b
		return false
	}
	v.prev, v.last = sum, seq
	return true
}

// Break stops the walk at the next entry, for a reason only the store can
// see (a malformed key, search columns that differ from the record).
func (v *ChainVerifier) Break(msg string) {
	if v.brk == nil {
		v.brk = &chainBreak{v.last + 1, msg}
	}
}

func (v *ChainVerifier) advance() {
	if v.next == nil {
		v.cp.ok = false
		return
	}
	seq, line, ok, bad := v.next()
	if bad != "" {
		v.brk = &chainBreak{v.rep.Anchor + 1, bad}
		ok = false
	}
	v.cp.seq, v.cp.line, v.cp.ok = seq, line, ok
}

// anchorAt checks a signed head (a checkpoint, the exported head) against
// the chain hash of entry seq.
func (v *ChainVerifier) anchorAt(kind string, h *Head, seq uint64, sum [32]byte) *chainBreak {
	from := v.rep.Anchor + 1
	if len(v.keys) > 0 {
		if err := h.Verify(v.keys); err != nil {
			msg := fmt.Sprintf("%s at entry %d: %v", kind, seq, err)
			if seq >= from {
				msg += fmt.Sprintf(": entries %d..%d are not anchored", from, seq)
			}
			return &chainBreak{from, msg}
		}
	}
	if h.Hash != sum {
		if seq == 0 {
			return &chainBreak{1, fmt.Sprintf("the %s at entry 0 does not sign the empty log", kind)}
		}
		return &chainBreak{from, fmt.Sprintf("entries %d..%d were rewritten and re-chained: the %s signed at entry %d does not match the chain", from, seq, kind, seq)}
	}
	if len(v.keys) > 0 {
		v.rep.Anchor, v.anchored = seq, true
	}
	return nil
}

// at checks the checkpoints stored at entry seq, and the exported head if
// it names seq, against the entry's chain hash.
func (v *ChainVerifier) at(seq uint64, sum [32]byte) *chainBreak {
	for ; v.brk == nil && v.cp.ok && v.cp.seq <= seq; v.advance() {
		cs := v.cp.seq
		if cs < seq {
			return &chainBreak{v.rep.Anchor + 1, fmt.Sprintf("checkpoint at entry %d out of order", cs)}
		}
		h, err := ParseHead(v.cp.line)
		if err != nil {
			return &chainBreak{v.rep.Anchor + 1, fmt.Sprintf("checkpoint at entry %d unreadable: %v", cs, err)}
		}
		if h.Seq != cs {
			return &chainBreak{v.rep.Anchor + 1, fmt.Sprintf("checkpoint stored at entry %d names entry %d: moved", cs, h.Seq)}
		}
		if b := v.anchorAt("checkpoint", &h, cs, sum); b != nil {
			return b
		}
		v.rep.Checkpoints++
	}
	if v.brk != nil {
		return v.brk
	}
	if v.head != nil && v.head.Seq == seq {
		if b := v.anchorAt("exported head", v.head, seq, sum); b != nil {
			return b
		}
		v.rep.HeadChecked, v.rep.Head = true, seq
	}
	return nil
}

// Finish ends the walk at the log's end: no checkpoint or exported head
// may name an entry beyond it, and the store's head record must name the
// last entry and its hash. superseded is the number of checkpoints an
// operator set aside (AcceptUnverified), reported as a warning.
func (v *ChainVerifier) Finish(hr HeadRecord, superseded int) VerifyReport {
	rep, last := v.rep, v.last
	if v.brk == nil {
		switch {
		case v.cp.ok:
			v.brk = &chainBreak{last + 1, fmt.Sprintf("log truncated: a signed checkpoint names entry %d but the log ends at %d", v.cp.seq, last)}
		case v.head != nil && v.head.Seq > last:
			v.brk = &chainBreak{last + 1, fmt.Sprintf("log truncated: the exported head names entry %d but the log ends at %d", v.head.Seq, last)}
		default:
			lastHash := v.prev[:]
			switch {
			case !hr.Present && last == 0:
			case !hr.Present:
				v.brk = &chainBreak{last, fmt.Sprintf("entry %d: the head record is missing", last)}
			case hr.Malformed:
				v.brk = &chainBreak{last + 1, "the head record is malformed"}
			case hr.Seq > last:
				v.brk = &chainBreak{last + 1, fmt.Sprintf("log truncated: the head record names entry %d but the log ends at %d", hr.Seq, last)}
			case hr.Seq < last:
				v.brk = &chainBreak{hr.Seq + 1, fmt.Sprintf("entries %d..%d lie beyond the head record: appended behind the writer's back", hr.Seq+1, last)}
			case !bytes.Equal(hr.Hash, lastHash):
				v.brk = &chainBreak{last, fmt.Sprintf("entry %d: the head record's hash differs", last)}
			}
			if !v.anchored {
				rep.Anchor = 0
			}
			if superseded > 0 {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d checkpoint(s) set aside by an operator override (AcceptUnverified): the audit-override entries say why", superseded))
			}
		}
	}
	switch {
	case v.brk != nil:
		rep.FirstBroken, rep.Err = v.brk.seq, fmt.Errorf("audit log broken at entry %d: %s", v.brk.seq, v.brk.msg)
		rep.Entries = int(v.brk.seq - 1)
	case v.headErr != nil:
		rep.Err, rep.Entries = v.headErr, int(last)
	default:
		rep.Entries = int(last)
	}
	if last > rep.Anchor {
		rep.Unanchored = int(last - rep.Anchor)
	}
	return rep
}

// SigningKeys resolves a store's audit key options: the private key that
// signs checkpoints (nil when verifying only, or without a key) and every
// public key a signature may verify with. A read-only store reads the key
// file's public half and never creates it; a writing one creates the key
// file at first use.
func SigningKeys(key ed25519.PrivateKey, keyFile string, trusted []ed25519.PublicKey, readOnly bool) (ed25519.PrivateKey, []ed25519.PublicKey, error) {
	var pubs []ed25519.PublicKey
	switch {
	case key != nil && keyFile != "":
		return nil, nil, errors.New("give Options.Key or Options.KeyFile, not both")
	case keyFile != "" && readOnly:
		pub, err := LoadPublicKey(keyFile)
		if err != nil {
			return nil, nil, err
		}
		pubs = append(pubs, pub)
	case keyFile != "":
		k, err := LoadOrCreateKey(keyFile)
		if err != nil {
			return nil, nil, err
		}
		key = k
	case key != nil && len(key) != ed25519.PrivateKeySize:
		return nil, nil, errors.New("Options.Key is not an Ed25519 private key")
	}
	if key != nil {
		pubs = append(pubs, key.Public().(ed25519.PublicKey))
	}
	for _, k := range trusted {
		if len(k) != ed25519.PublicKeySize {
			return nil, nil, errors.New("a trusted key is not an Ed25519 public key")
		}
		pubs = append(pubs, k)
	}
	return key, pubs, nil
}

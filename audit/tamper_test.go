package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// anchored is a log with a key outside its directory, an exported head, and
// checkpoints every 5 entries (the interval timer out of the way).
type anchored struct {
	dir, keyDir    string
	path, headFile string
	key            ed25519.PrivateKey
}

func newAnchored(t testing.TB) *anchored {
	t.Helper()
	a := &anchored{dir: t.TempDir(), keyDir: t.TempDir()}
	a.path = filepath.Join(a.dir, "audit.db")
	a.headFile = filepath.Join(a.keyDir, "audit.head")
	a.key = testKey
	return a
}

func (a *anchored) opts() Options {
	return Options{Key: a.key, HeadFile: a.headFile, CheckpointEvery: 5, CheckpointInterval: time.Hour,
		Now: (&stepClock{t: t0}).Now}
}

func (a *anchored) open(t testing.TB) *Store {
	t.Helper()
	s, err := Open(a.path, a.opts())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// mutate changes the closed log's file directly, as an attacker with write
// access to the data directory would.
func (a *anchored) mutate(t *testing.T, fn func(t *testing.T, tx *bbolt.Tx)) {
	t.Helper()
	db, err := bbolt.Open(a.path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	must(t, db.Update(func(tx *bbolt.Tx) error { fn(t, tx); return nil }))
	must(t, db.Close())
}

// rechain recomputes every stored hash from entry from on, and the head
// record: what an attacker without the key does after editing an entry.
func rechain(t *testing.T, tx *bbolt.Tx, from uint64) {
	lb := tx.Bucket(bucketLog)
	var prev [32]byte
	if from > 1 {
		copy(prev[:], lb.Get(seqKey(from - 1))[:32])
	}
	c := lb.Cursor()
	var last uint64
	var lastRec []byte
	for k, v := c.Seek(seqKey(from)); k != nil; k, v = c.Next() {
		body := bytes.Clone(v[32:])
		h := sha256.Sum256(append(prev[:], body...))
		must(t, lb.Put(bytes.Clone(k), append(h[:], body...)))
		prev, last, lastRec = h, binary.BigEndian.Uint64(k), body
	}
	setHeadRecord(t, tx, last, prev, lastRec)
}

func setHeadRecord(t *testing.T, tx *bbolt.Tx, seq uint64, hash [32]byte, body []byte) {
	_, rec, err := recordHead(body)
	if err != nil {
		t.Fatal(err)
	}
	hr := make([]byte, 48)
	binary.BigEndian.PutUint64(hr, seq)
	copy(hr[8:], hash[:])
	binary.BigEndian.PutUint64(hr[40:], uint64(rec.UnixNano()))
	must(t, tx.Bucket(bucketMeta).Put(keyHead, hr))
}

func editPID(t *testing.T, tx *bbolt.Tx, seq uint64) {
	b := tx.Bucket(bucketLog)
	v := bytes.Clone(b.Get(seqKey(seq)))
	i := bytes.Index(v, []byte(`"pid":"`))
	if i < 0 {
		t.Fatal("no pid")
	}
	v[i+8] ^= 0x01
	must(t, b.Put(seqKey(seq), v))
}

func deleteCheckpoints(t *testing.T, tx *bbolt.Tx, from uint64) {
	cb := tx.Bucket(bucketCheckpoint)
	var keys [][]byte
	c := cb.Cursor()
	for k, _ := c.Seek(seqKey(from)); k != nil; k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		must(t, cb.Delete(k))
	}
}

func flip(t *testing.T, tx *bbolt.Tx, seq uint64, at int) {
	b := tx.Bucket(bucketLog)
	v := bytes.Clone(b.Get(seqKey(seq)))
	if at < 0 {
		at += len(v)
	}
	v[at] ^= 0x20
	must(t, b.Put(seqKey(seq), v))
}

// TestTamperMatrix: every way an attacker who can write the data directory
// (but not read the key) can change the log is caught by Verify with a
// message naming what happened, and — where the change touches the newest
// checkpoint, the tail or the head — by Open, which refuses the log.
func TestTamperMatrix(t *testing.T) {
	const n = 20 // checkpoints at 0, 5, 10, 15, 20; exported head at 20
	for _, tc := range []struct {
		name   string
		mutate func(t *testing.T, a *anchored, tx *bbolt.Tx)
		files  func(t *testing.T, a *anchored) // changes outside the log
		vo     func(a *anchored) VerifyOptions
		broken uint64 // Verify's FirstBroken (0: the failure names no entry)
		msg    string // in Verify's error
		open   string // in Open's refusal; "" when fast start does not look there
	}{
		{name: "edit entry body", broken: 7, msg: "entry 7: hash mismatch: the entry was edited",
			mutate: func(t *testing.T, a *anchored, tx *bbolt.Tx) { editPID(t, tx, 7) }},
		{name: "corrupt record head", broken: 7, msg: "entry 7: record unreadable",
			mutate: func(t *testing.T, a *anchored, tx *bbolt.Tx) { flip(t, tx, 7, 32+40) }},
		{name: "edit newest entry", broken: 20, msg: "entry 20: hash mismatch", open: "entry 20: hash mismatch",
			mutate: func(t *testing.T, a *anchored, tx *bbolt.Tx) { flip(t, tx, 20, -2) }},
		{name: "edit stored hash", broken: 3, msg: "entry 3: hash mismatch",
			mutate: func(t *testing.T, a *anchored, tx *bbolt.Tx) { flip(t, tx, 3, 5) }},
		{name: "edit entry and rehash it", broken: 12, msg: "entry 12: hash mismatch",
			mutate: func(t *testing.T, a *anchored, tx *bbolt.Tx) {
				editPID(t, tx, 11)
				lb := tx.Bucket(bucketLog)
				v := bytes.Clone(lb.Get(seqKey(11)))
				h := sha256.Sum256(append(bytes.Clone(lb.Get(seqKey(10))[:32]), v[32:]...))
				copy(v, h[:])
				must(t, lb.Put(seqKey(11), v))
			}},
		{name: "delete entry", broken: 9, msg: "entry 9 is missing (deleted): the next entry is 10",
			mutate: func(t *testing.T, a *anchored, tx *bbolt.Tx) { must(t, tx.Bucket(bucketLog).Delete(seqKey(9))) }},
		{name: "swap entries", broken: 4, msg: "entry 4 holds the record of entry 5: entries swapped or moved",
			mutate: func(t *testing.T, a *anchored, tx *bbolt.Tx) {
				b := tx.Bucket(bucketLog)
				v4, v5 := bytes.Clone(b.Get(seqKey(4))), bytes.Clone(b.Get(seqKey(5)))
				must(t, b.Put(seqKey(4), v5))
				must(t, b.Put(seqKey(5), v4))
			}},
		{name: "append forged entry", broken: 21, msg: "entry 21 holds the record of entry 20",
			open: "the head record names entry 20 but the log ends at 21",
			mutate: func(t *testing.T, a *anchored, tx *bbolt.Tx) {
				b := tx.Bucket(bucketLog)
				must(t, b.Put(seqKey(21), bytes.Clone(b.Get(seqKey(20)))))
			}},
		{name: "re-chain", broken: 6, msg: "entries 6..10 were rewritten and re-chained: the checkpoint signed at entry 10 does not match the chain",
			open: "entry 20 does not match its signed checkpoint",
			mutate: func(t *testing.T, a *anchored, tx *bbolt.Tx) {
				editPID(t, tx, 7)
				rechain(t, tx, 7)
			}},
		{name: "re-chain newest entries", broken: 16, msg: "entries 16..20 were rewritten and re-chained: the checkpoint signed at entry 20",
			open: "entry 20 does not match its signed checkpoint",
			mutate: func(t *testing.T, a *anchored, tx *bbolt.Tx) {
				editPID(t, tx, 18)
				rechain(t, tx, 18)
			}},
		{name: "re-chain and strip checkpoints", broken: 1, msg: "entries 1..20 were rewritten and re-chained: the exported head signed at entry 20 does not match the chain",
			open: "no signed checkpoint",
			mutate: func(t *testing.T, a *anchored, tx *bbolt.Tx) {
				editPID(t, tx, 7)
				rechain(t, tx, 7)
				deleteCheckpoints(t, tx, 0)
			}},
		{name: "re-chain and re-sign with another key", broken: 1, msg: "checkpoint at entry 0: signed by key " + KeyID(pubOf(otherKey)) + ", which is not a trusted audit key",
			open: "checkpoint at entry 20: signed by key " + KeyID(pubOf(otherKey)),
			mutate: func(t *testing.T, a *anchored, tx *bbolt.Tx) {
				editPID(t, tx, 7)
				rechain(t, tx, 7)
				resign(t, tx, otherKey)
			},
			files: func(t *testing.T, a *anchored) {
				h, err := ReadHeadFile(a.headFile)
				must(t, err)
				must(t, WriteHeadFile(a.headFile, signHead(otherKey, h.Seq, h.Hash, h.Time, h.Node)))
			}},
		{name: "altered checkpoint", broken: 6, msg: "checkpoint at entry 10: signature does not verify",
			mutate: func(t *testing.T, a *anchored, tx *bbolt.Tx) {
				cb := tx.Bucket(bucketCheckpoint)
				h, err := ParseHead(cb.Get(seqKey(10)))
				must(t, err)
				h.Time = h.Time.Add(time.Hour) // a re-encoded, unsigned change
				line, _ := h.MarshalText()
				must(t, cb.Put(seqKey(10), line))
			}},
		{name: "truncate tail", broken: 19, msg: "log truncated: a signed checkpoint names entry 20 but the log ends at 18",
			open: "the head record names entry 20 but the log ends at 18",
			mutate: func(t *testing.T, a *anchored, tx *bbolt.Tx) {
				must(t, tx.Bucket(bucketLog).Delete(seqKey(19)))
				must(t, tx.Bucket(bucketLog).Delete(seqKey(20)))
			}},
		{name: "truncate tail and cover tracks", broken: 19, msg: "log truncated: the exported head names entry 20 but the log ends at 18",
			open: "the log is behind its exported head: the head names entry 20 but the log ends at 18",
			mutate: func(t *testing.T, a *anchored, tx *bbolt.Tx) {
				lb := tx.Bucket(bucketLog)
				must(t, lb.Delete(seqKey(19)))
				must(t, lb.Delete(seqKey(20)))
				deleteCheckpoints(t, tx, 16)
				v := lb.Get(seqKey(18))
				setHeadRecord(t, tx, 18, [32]byte(v[:32]), v[32:])
			}},
		{name: "truncate everything", broken: 1, msg: "log truncated: the exported head names entry 20 but the log ends at 0",
			open: "the log is behind its exported head",
			mutate: func(t *testing.T, a *anchored, tx *bbolt.Tx) {
				for _, b := range [][]byte{bucketLog, bucketCheckpoint, bucketMeta} {
					must(t, tx.DeleteBucket(b))
					_, err := tx.CreateBucket(b)
					must(t, err)
				}
			}},
		{name: "wrong key", broken: 1, msg: "checkpoint at entry 0: signed by key " + KeyID(pubOf(testKey)),
			vo: func(a *anchored) VerifyOptions {
				return VerifyOptions{Keys: []ed25519.PublicKey{pubOf(otherKey)}}
			}},
		{name: "missing head", msg: "the exported head " + "%HEAD%" + " is missing", open: "is missing but the log holds 20 entries",
			files: func(t *testing.T, a *anchored) { must(t, os.Remove(a.headFile)) }},
		{name: "forged head", msg: "the exported head is unreadable", open: "not in canonical form",
			files: func(t *testing.T, a *anchored) {
				b, err := os.ReadFile(a.headFile)
				must(t, err)
				must(t, os.WriteFile(a.headFile, bytes.Replace(b, []byte("seq=20"), []byte("seq=020"), 1), 0o644))
			}},
		{name: "head re-signed wrongly", msg: "exported head at entry 18: signature does not verify", broken: 16,
			open: "signature does not verify",
			files: func(t *testing.T, a *anchored) {
				h, err := ReadHeadFile(a.headFile)
				must(t, err)
				h.Seq = 18 // keep the old signature
				must(t, WriteHeadFile(a.headFile, h))
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAnchored(t)
			s := a.open(t)
			fill(t, s, n)
			must(t, s.Close())
			if tc.mutate != nil {
				a.mutate(t, func(t *testing.T, tx *bbolt.Tx) { tc.mutate(t, a, tx) })
			}
			if tc.files != nil {
				tc.files(t, a)
			}
			want := strings.ReplaceAll(tc.msg, "%HEAD%", a.headFile)

			ro, err := Open(a.path, Options{ReadOnly: true, Key: a.key, HeadFile: a.headFile})
			if err != nil {
				t.Fatal(err)
			}
			vo := VerifyOptions{}
			if tc.vo != nil {
				vo = tc.vo(a)
			}
			rep, err := ro.VerifyWith(context.Background(), vo)
			must(t, ro.Close())
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || rep.FirstBroken != tc.broken || !strings.Contains(rep.Err.Error(), want) {
				t.Errorf("Verify = broken %d %v\nwant broken %d and %q", rep.FirstBroken, rep.Err, tc.broken, want)
			}
			if tc.broken > 0 && rep.Entries != int(tc.broken-1) {
				t.Errorf("Entries = %d, want %d", rep.Entries, tc.broken-1)
			}

			s2, err := Open(a.path, a.opts())
			switch {
			case tc.open != "" && err == nil:
				s2.Close()
				t.Fatalf("Open accepted the log; want a refusal with %q", tc.open)
			case tc.open != "" && (!strings.Contains(err.Error(), tc.open) || !strings.Contains(err.Error(), "refusing to open")):
				t.Errorf("Open refused with %v\nwant %q", err, tc.open)
			case tc.open == "" && err != nil:
				t.Fatalf("Open refused a log fast start does not check there: %v", err)
			case tc.open == "":
				must(t, s2.Close())
			}
		})
	}
}

// testKey and otherKey are fixed test keys.
var (
	testKey  = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	otherKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
)

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func resign(t *testing.T, tx *bbolt.Tx, key ed25519.PrivateKey) {
	cb := tx.Bucket(bucketCheckpoint)
	lb := tx.Bucket(bucketLog)
	c := cb.Cursor()
	type kv struct{ k, v []byte }
	var out []kv
	for k, v := c.First(); k != nil; k, v = c.Next() {
		h, err := ParseHead(v)
		must(t, err)
		if h.Seq > 0 {
			h.Hash = [32]byte(lb.Get(seqKey(h.Seq))[:32])
		}
		nh := signHead(key, h.Seq, h.Hash, h.Time, h.Node)
		line, _ := nh.MarshalText()
		out = append(out, kv{bytes.Clone(k), line})
	}
	for _, e := range out {
		must(t, cb.Put(e.k, e.v))
	}
}

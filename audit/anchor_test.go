package audit

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

func checkpointSeqs(t testing.TB, path string, opt Options) []uint64 {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []uint64
	must(t, db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketCheckpoint).ForEach(func(k, v []byte) error {
			h, err := ParseHead(v)
			if err != nil {
				return err
			}
			if err := h.Verify(append([]ed25519.PublicKey{pubOf(opt.Key)}, opt.TrustedKeys...)); err != nil {
				return err
			}
			if h.Seq != binary.BigEndian.Uint64(k) {
				return fmt.Errorf("checkpoint under %x names %d", k, h.Seq)
			}
			out = append(out, h.Seq)
			return nil
		})
	}))
	return out
}

// TestAnchoredLifecycle: a key file created outside the data directory, the
// genesis head exported before the first entry, a final checkpoint on
// Close, reopening, and a full Verify that reports the log anchored.
func TestAnchoredLifecycle(t *testing.T) {
	dir, keyDir := t.TempDir(), t.TempDir()
	path := filepath.Join(dir, "audit.db")
	keyFile := filepath.Join(keyDir, "sub", "audit.key")
	headFile := filepath.Join(keyDir, "audit.head")
	opt := Options{KeyFile: keyFile, HeadFile: headFile, CheckpointEvery: 8, CheckpointInterval: time.Hour}
	s, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v %v, want mode 0600", fi, err)
	}
	h, err := ReadHeadFile(headFile)
	if err != nil || h.Seq != 0 || h.Hash != ([32]byte{}) {
		t.Fatalf("genesis head %+v %v", h, err)
	}
	fill(t, s, 19)
	must(t, s.Close())
	key, err := LoadOrCreateKey(keyFile)
	must(t, err)
	if got := fmt.Sprint(checkpointSeqs(t, path, Options{Key: key})); got != "[0 8 16 19]" {
		t.Errorf("checkpoints %s, want [0 8 16 19] (genesis, every 8, Close)", got)
	}
	if h, err = ReadHeadFile(headFile); err != nil || h.Seq != 19 {
		t.Fatalf("head after Close %+v %v", h, err)
	}
	if err := h.Verify([]ed25519.PublicKey{pubOf(key)}); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, opt) // same key file: loaded, not recreated
	if err != nil {
		t.Fatal(err)
	}
	if seq, err := s.Append(context.Background(), entryFor(19)); err != nil || seq != 20 {
		t.Fatalf("Append after reopen %d %v", seq, err)
	}
	must(t, s.Close())
	ro, err := Open(path, Options{ReadOnly: true, KeyFile: keyFile, HeadFile: headFile})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	rep, err := ro.Verify(context.Background())
	if err != nil || !rep.OK() || rep.Entries != 20 || rep.Anchor != 20 || rep.Unanchored != 0 ||
		!rep.HeadChecked || rep.Head != 20 || rep.Checkpoints != 5 || len(rep.Warnings) != 0 {
		t.Fatalf("Verify = %+v %v", rep, err)
	}
	if err := ro.Record(context.Background(), entryFor(0)); err != ErrReadOnly {
		t.Errorf("Record on read-only = %v", err)
	}
}

func TestVerifyWarnsWhenUnanchored(t *testing.T) {
	s, _ := openTest(t, Options{})
	fill(t, s, 3)
	rep, err := s.Verify(context.Background())
	if err != nil || !rep.OK() || rep.Unanchored != 3 || len(rep.Warnings) != 2 {
		t.Fatalf("Verify = %+v %v", rep, err)
	}
	for _, w := range []string{"no audit public key", "no exported head"} {
		if !strings.Contains(strings.Join(rep.Warnings, "\n"), w) {
			t.Errorf("warnings %q lack %q", rep.Warnings, w)
		}
	}
}

func TestKeyFileRules(t *testing.T) {
	dir := t.TempDir()
	t.Run("refused beside the log", func(t *testing.T) {
		_, err := Open(filepath.Join(dir, "audit.db"), Options{KeyFile: filepath.Join(dir, "keys", "audit.key")})
		if err == nil || !strings.Contains(err.Error(), "in the log's directory") {
			t.Fatalf("Open = %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "keys", "audit.key")); !os.IsNotExist(err) {
			t.Error("the refused key was created")
		}
	})
	t.Run("refused when others may read it", func(t *testing.T) {
		kd := t.TempDir()
		kf := filepath.Join(kd, "audit.key")
		if _, err := LoadOrCreateKey(kf); err != nil {
			t.Fatal(err)
		}
		must(t, os.Chmod(kf, 0o640))
		_, err := Open(filepath.Join(t.TempDir(), "audit.db"), Options{KeyFile: kf})
		if err == nil || !strings.Contains(err.Error(), "mode 0640") {
			t.Fatalf("Open = %v", err)
		}
	})
	t.Run("not an Ed25519 key", func(t *testing.T) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		kf := filepath.Join(t.TempDir(), "audit.key")
		must(t, os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
		if _, err := LoadOrCreateKey(kf); err == nil || !strings.Contains(err.Error(), "want Ed25519") {
			t.Fatalf("LoadOrCreateKey = %v", err)
		}
	})
	t.Run("both Key and KeyFile", func(t *testing.T) {
		if _, err := Open(filepath.Join(t.TempDir(), "a.db"), Options{Key: testKey, KeyFile: "/x"}); err == nil {
			t.Fatal("accepted")
		}
	})
	t.Run("head file without key", func(t *testing.T) {
		if _, err := Open(filepath.Join(t.TempDir(), "a.db"), Options{HeadFile: "/x"}); err == nil {
			t.Fatal("accepted")
		}
	})
	t.Run("public key round trip", func(t *testing.T) {
		b, err := MarshalPublicKeyPEM(pubOf(testKey))
		must(t, err)
		pub, err := ParsePublicKeyPEM(b)
		if err != nil || !pub.Equal(pubOf(testKey)) {
			t.Fatalf("%v %v", pub, err)
		}
	})
}

// TestOpenWrongKey: a log anchored with one key does not open with
// another (its checkpoints would not verify).
func TestOpenWrongKey(t *testing.T) {
	a := newAnchored(t)
	s := a.open(t)
	fill(t, s, 3)
	must(t, s.Close())
	opt := a.opts()
	opt.Key = otherKey
	if _, err := Open(a.path, opt); err == nil || !strings.Contains(err.Error(), "not a trusted audit key") {
		t.Fatalf("Open with another key = %v", err)
	}
	opt.TrustedKeys = []ed25519.PublicKey{pubOf(testKey)} // a rotation: the old key still verifies
	s, err := Open(a.path, opt)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, 2)
	must(t, s.Close())
	ro, err := Open(a.path, Options{ReadOnly: true, Key: otherKey, TrustedKeys: opt.TrustedKeys, HeadFile: a.headFile})
	must(t, err)
	defer ro.Close()
	if rep, err := ro.Verify(context.Background()); err != nil || !rep.OK() || rep.Entries != 5 {
		t.Fatalf("Verify after rotation = %+v %v", rep, err)
	}
}

// TestOverride: an operator who has investigated opens a truncated log with
// AcceptUnverified; the decision is recorded in the log, a new head is
// signed, later opens need no override, and Verify still shows the old
// break.
func TestOverride(t *testing.T) {
	a := newAnchored(t)
	s := a.open(t)
	fill(t, s, 12)
	must(t, s.Close())
	a.mutate(t, func(t *testing.T, tx *bbolt.Tx) {
		must(t, tx.Bucket(bucketLog).Delete(seqKey(12)))
		must(t, tx.Bucket(bucketLog).Delete(seqKey(11)))
	})
	if _, err := Open(a.path, a.opts()); err == nil {
		t.Fatal("Open accepted a truncated log")
	}
	opt := a.opts()
	opt.AcceptUnverified = true
	s, err := Open(a.path, opt)
	if err != nil {
		t.Fatal(err)
	}
	e, ok, err := s.Get(context.Background(), 11)
	if err != nil || !ok || e.Action != "audit-override" || !strings.Contains(e.Rule, "the head record names entry 12 but the log ends at 10") {
		t.Fatalf("override entry %+v %v %v", e, ok, err)
	}
	fill(t, s, 1)
	must(t, s.Close())
	if h, err := ReadHeadFile(a.headFile); err != nil || h.Seq != 12 {
		t.Fatalf("head after override %+v %v", h, err)
	}
	s, err = Open(a.path, a.opts())
	if err != nil {
		t.Fatalf("Open after the override: %v", err)
	}
	must(t, s.Close())
	ro, err := Open(a.path, Options{ReadOnly: true, Key: a.key, HeadFile: a.headFile})
	must(t, err)
	defer ro.Close()
	rep, err := ro.Verify(context.Background())
	if err != nil || !rep.OK() || rep.Entries != 12 || !strings.Contains(strings.Join(rep.Warnings, "\n"), "1 checkpoint(s) set aside by an operator override") {
		t.Fatalf("Verify after override = %+v %v (want the set-aside checkpoint reported)", rep, err)
	}
}

// TestCheckpointInterval: with few entries the interval timer signs a
// checkpoint of its own and the head is exported, without any further
// Record.
func TestCheckpointInterval(t *testing.T) {
	a := newAnchored(t)
	opt := a.opts()
	opt.CheckpointEvery = 1000
	opt.CheckpointInterval = 5 * time.Millisecond
	s, err := Open(a.path, opt)
	must(t, err)
	defer s.Close()
	fill(t, s, 3)
	deadline := time.Now().Add(20 * time.Second)
	for s.Stats().HeadExported < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint after the interval: %+v", s.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	st := s.Stats()
	if st.LastCheckpoint != 3 || st.CheckpointOnly < 2 { // the genesis, then the timer's
		t.Errorf("stats %+v", st)
	}
	if h, err := ReadHeadFile(a.headFile); err != nil || h.Seq != 3 {
		t.Errorf("head %+v %v", h, err)
	}
}

// TestCheckpointEveryCommit: CheckpointEvery 1 signs each commit, inside the
// commit's own transaction (no extra transaction).
func TestCheckpointEveryCommit(t *testing.T) {
	a := newAnchored(t)
	opt := a.opts()
	opt.CheckpointEvery = 1
	s, err := Open(a.path, opt)
	must(t, err)
	fill(t, s, 4)
	st := s.Stats()
	must(t, s.Close())
	if st.Commits != 4 || st.Checkpoints != 5 || st.CheckpointOnly != 1 {
		t.Errorf("stats %+v: want 4 commits, 5 checkpoints of which only the genesis alone", st)
	}
	if got := fmt.Sprint(checkpointSeqs(t, a.path, opt)); got != "[0 1 2 3 4]" {
		t.Errorf("checkpoints %s", got)
	}
}

type headRecorder struct {
	mu    sync.Mutex
	heads []Head
}

func (r *headRecorder) PublishHead(ctx context.Context, h Head) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.heads = append(r.heads, h)
	return nil
}

// TestHeadSink: the sink sees signed heads in increasing order, ending with
// Close's; a copy held there catches a log and head file rolled back
// together, which nothing on the host can.
func TestHeadSink(t *testing.T) {
	a := newAnchored(t)
	rec := &headRecorder{}
	opt := a.opts()
	opt.HeadSink = rec
	s, err := Open(a.path, opt)
	must(t, err)
	fill(t, s, 12)
	must(t, s.Close())
	var prev uint64
	for i, h := range rec.heads {
		if err := h.Verify([]ed25519.PublicKey{pubOf(testKey)}); err != nil {
			t.Fatal(err)
		}
		if i > 0 && h.Seq <= prev {
			t.Fatalf("heads out of order: %d after %d", h.Seq, prev)
		}
		prev = h.Seq
	}
	if len(rec.heads) < 2 || prev != 12 || rec.heads[0].Seq != 0 {
		t.Fatalf("heads %v", rec.heads)
	}
	// roll back: log to entry 10 (its checkpoint), head file to that checkpoint
	var old Head
	a.mutate(t, func(t *testing.T, tx *bbolt.Tx) {
		var err error
		old, err = ParseHead(tx.Bucket(bucketCheckpoint).Get(seqKey(10)))
		must(t, err)
		for _, q := range []uint64{11, 12} {
			must(t, tx.Bucket(bucketLog).Delete(seqKey(q)))
		}
		deleteCheckpoints(t, tx, 11)
		v := tx.Bucket(bucketLog).Get(seqKey(10))
		setHeadRecord(t, tx, 10, [32]byte(v[:32]), v[32:])
	})
	must(t, WriteHeadFile(a.headFile, old))
	s, err = Open(a.path, a.opts())
	if err != nil {
		t.Fatalf("a consistent rollback opens (undetectable on the host): %v", err)
	}
	must(t, s.Close())
	ro, err := Open(a.path, Options{ReadOnly: true, Key: testKey})
	must(t, err)
	defer ro.Close()
	sinkCopy := rec.heads[len(rec.heads)-1]
	rep, err := ro.VerifyWith(context.Background(), VerifyOptions{Head: &sinkCopy})
	if err != nil || rep.OK() || !strings.Contains(rep.Err.Error(), "log truncated: the exported head names entry 12") {
		t.Fatalf("Verify against the sink's copy = %+v %v", rep, err)
	}
}

func TestParseHead(t *testing.T) {
	h := signHead(testKey, 42, [32]byte{1, 2, 3}, t0, "node a/b")
	line, _ := h.MarshalText()
	for _, tc := range []struct {
		name, in, err string
	}{
		{"good", string(line), ""},
		{"good with newline", string(line) + "\n", ""},
		{"two newlines", string(line) + "\n\n", "canonical"},
		{"other magic", strings.Replace(string(line), headMagic, "gpgate-audit-head/2", 1), "not a"},
		{"leading zero", strings.Replace(string(line), "seq=42", "seq=042", 1), "canonical"},
		{"changed hash", strings.Replace(string(line), "hash=0102", "hash=0103", 1), ""},
		{"field order", strings.Replace(string(line), " seq=42", "", 1) + " seq=42", "field 1 is not seq"},
		{"bad time", strings.Replace(string(line), "time=2025", "time=20x5", 1), "bad time"},
		{"short sig", string(line[:len(line)-4]), "bad signature"},
		{"node escaping", strings.Replace(string(line), "node=node+a%2Fb", "node=node%20a/b", 1), "canonical"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseHead([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "changed hash" {
				if err := got.Verify([]ed25519.PublicKey{pubOf(testKey)}); err == nil {
					t.Fatal("a changed hash verified")
				}
				return
			}
			if got.Seq != 42 || got.Node != "node a/b" || !got.Time.Equal(t0) || got.Hash != h.Hash {
				t.Fatalf("parsed %+v", got)
			}
			if err := got.Verify([]ed25519.PublicKey{pubOf(otherKey), pubOf(testKey)}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// FuzzParseHead: any bytes either fail to parse or parse to a head that
// renders back to exactly those bytes (so what is verified is what was
// read), and verification never panics.
func FuzzParseHead(f *testing.F) {
	h := signHead(testKey, 1024, [32]byte{0xff}, t0, "gp-1")
	line, _ := h.MarshalText()
	f.Add(line)
	f.Add(append(bytes.Clone(line), '\n'))
	g := signHead(testKey, 0, [32]byte{}, t0, "")
	gl, _ := g.MarshalText()
	f.Add(gl)
	f.Add([]byte("gpgate-audit-head/1 seq= hash= time= node= key= sig="))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHead(b)
		if err != nil {
			return
		}
		out, _ := h.MarshalText()
		if !bytes.Equal(out, bytes.TrimSuffix(b, []byte("\n"))) {
			t.Fatalf("parsed %q, renders %q", b, out)
		}
		_ = h.Verify([]ed25519.PublicKey{pubOf(testKey)})
	})
}

// FuzzParsePublicKeyPEM: key files that are not Ed25519 PEM keys fail
// cleanly.
func FuzzParsePublicKeyPEM(f *testing.F) {
	pub, _ := MarshalPublicKeyPEM(pubOf(testKey))
	f.Add(pub)
	der, _ := x509.MarshalPKCS8PrivateKey(testKey)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParsePublicKeyPEM(b)
		if err == nil && len(k) != ed25519.PublicKeySize {
			t.Fatalf("key of %d bytes", len(k))
		}
	})
}

func TestWithin(t *testing.T) {
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "data", "sub"), 0o700))
	must(t, os.Symlink(filepath.Join(root, "data"), filepath.Join(root, "link")))
	for _, tc := range []struct {
		path, dir string
		want      bool
	}{
		{"data/audit.key", "data", true},
		{"data/sub/new/audit.key", "data", true},
		{"data", "data", true},
		{"link/x/audit.key", "data", true}, // through a symlink, not yet created
		{"data.audit-key", "data", false},
		{"keys/audit.key", "data", false},
		{"data/../keys/audit.key", "data", false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			if got := within(filepath.Join(root, tc.path), filepath.Join(root, tc.dir)); got != tc.want {
				t.Errorf("within = %v", got)
			}
		})
	}
}

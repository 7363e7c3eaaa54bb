package boltmem

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.etcd.io/bbolt"
)

// mappedKB is the resident size (kB) of path's mappings in this process,
// from /proc/self/smaps.
func mappedKB(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatalf("smaps: %v", err)
	}
	defer f.Close()
	kb, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && fields[len(fields)-1] == path
			continue
		}
		if in && len(fields) == 3 && fields[0] == "Rss:" {
			n, _ := strconv.Atoi(fields[1])
			kb += n
		}
	}
	return kb
}

func TestReleaseDropsMappedPagesAndReadsBackTheSame(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	val := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 3000) }
	const n = 4000 // ~12 MB of values
	if err := db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			k := binary.BigEndian.AppendUint64(nil, uint64(i))
			if err := b.Put(k, val(i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	readAll := func() {
		t.Helper()
		if err := db.View(func(tx *bbolt.Tx) error {
			i := 0
			return tx.Bucket([]byte("b")).ForEach(func(k, v []byte) error {
				if !bytes.Equal(v, val(i)) {
					t.Fatalf("value %d reads back changed", i)
				}
				i++
				return nil
			})
		}); err != nil {
			t.Fatal(err)
		}
	}
	readAll()
	before := mappedKB(t, path)
	if before < 8*1024 {
		t.Fatalf("reading 12 MB left only %d kB of the file mapped: the test cannot see a release", before)
	}
	if err := Release(db); err != nil {
		t.Fatalf("Release: %v", err)
	}
	after := mappedKB(t, path)
	if after > before/10 {
		t.Fatalf("after Release %d kB of the file still mapped (before: %d kB)", after, before)
	}
	readAll() // every page faults back from the page cache, unchanged
	if again := mappedKB(t, path); again < 8*1024 {
		t.Fatalf("reads after Release did not map the pages again (%d kB): did they read the file?", again)
	}
	// A write after a release, then a read: bbolt's own view stays whole.
	if err := db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("b")).Put([]byte("zz"), []byte("after"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := Release(db); err != nil {
		t.Fatal(err)
	}
	if err := db.View(func(tx *bbolt.Tx) error {
		if got := tx.Bucket([]byte("b")).Get([]byte("zz")); string(got) != "after" {
			t.Fatalf("write after release reads %q", got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

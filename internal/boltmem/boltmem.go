// Package boltmem gives back the pages of a bbolt file that a process has
// read through bbolt's read-only memory map.
//
// bbolt reads by mapping the whole file (MAP_SHARED, PROT_READ) and
// writes with pwrite, so every page a reader touches stays mapped into the
// process and counts in its resident set (RSS) until the kernel reclaims
// it — an append-only audit log read by its forwarders, or a region's
// records read once each, grows the RSS with the files, not with the work.
// Release drops those pages from the process (madvise MADV_DONTNEED); they
// stay in the page cache, and the next read of one faults it back from
// there. The mapping is read-only and bbolt never writes through it, so a
// dropped page reads back exactly as it was.
package boltmem

import "go.etcd.io/bbolt"

// Release drops the pages of db's memory map from the process. It holds a
// read transaction while it does, so bbolt cannot remap the file under it
// (a remap takes the map lock exclusively). Safe to call at any time,
// concurrently with readers and the writer.
func Release(db *bbolt.DB) error {
	return db.View(func(tx *bbolt.Tx) error {
		size := tx.Size() // the high-water mark: within the mapping
		if size <= 0 {
			return nil
		}
		return madvise(db.Info().Data, uintptr(size))
	})
}

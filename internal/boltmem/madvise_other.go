//go:build !linux

package boltmem

// madvise does nothing where MADV_DONTNEED on a shared read-only mapping is
// not known to be safe: the pages stay until the kernel reclaims them.
func madvise(addr, length uintptr) error { return nil }

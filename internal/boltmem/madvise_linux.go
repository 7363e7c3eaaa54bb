package boltmem

import "syscall"

func madvise(addr, length uintptr) error {
	if addr == 0 || length == 0 {
		return nil
	}
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, addr, length, syscall.MADV_DONTNEED); errno != 0 {
		return errno
	}
	return nil
}

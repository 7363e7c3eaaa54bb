package main

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// lockedErr turns bbolt's lock timeout on a data directory file into the
// error a user can act on: another gpgate holds it.
func lockedErr(err error, data, file string) error {
	if errors.Is(err, berrors.ErrTimeout) || errors.Is(err, bolt.ErrTimeout) { //nolint:staticcheck // both spellings
		return fmt.Errorf("another gpgate is serving %s (%s is locked): stop it first, or use another --data directory", data, file)
	}
	return err
}

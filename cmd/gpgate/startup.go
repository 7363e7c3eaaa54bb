package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/gpgate/gpgate/adapters"
	"github.com/gpgate/gpgate/consent"
)

// lockedErr turns bbolt's lock timeout on a data directory file into the
// error a user can act on: another gpgate holds it.
func lockedErr(err error, data, file string) error {
	if errors.Is(err, berrors.ErrTimeout) || errors.Is(err, bolt.ErrTimeout) { //nolint:staticcheck // both spellings
		return fmt.Errorf("another gpgate is serving %s (%s is locked): stop it first, or use another --data directory", data, file)
	}
	return err
}

// providerAgreements lists a practice's agreements.
type providerAgreements interface {
	ForProvider(ctx context.Context, practice string) ([]consent.Agreement, error)
}

// warnUnshared logs a warning for every served practice that no active
// agreement shares with anyone: every request for its patients will be
// refused NO_ORGANISATION_CONSENT, which is right but surprising.
func warnUnshared(ctx context.Context, reg *adapters.Registry, ag providerAgreements, now time.Time, log *slog.Logger) []string {
	var unshared []string
	for _, p := range reg.Practices() {
		as, err := ag.ForProvider(ctx, p.ODS)
		if err != nil {
			log.Warn("agreements unreadable", "practice", p.ODS, "err", err)
			continue
		}
		live := false
		for _, a := range as {
			live = live || (a.Status == consent.StatusActive && (a.Start.IsZero() || !now.Before(a.Start)) && (a.End.IsZero() || now.Before(a.End)))
		}
		if !live {
			unshared = append(unshared, p.ODS)
		}
	}
	if len(unshared) > 0 {
		log.Warn("practices without an active sharing agreement: every request for their patients is refused (add one with `gpgate agreements add --provider ODS ...`)",
			"practices", strings.Join(unshared, ","))
	}
	return unshared
}

package consent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/fhir"
)

// AgreementStore holds sharing agreements and named consumer groups.
// Status changes take effect on the next decision: nothing is cached.
type AgreementStore interface {
	Add(ctx context.Context, a Agreement) (Agreement, error)
	Get(ctx context.Context, id string) (Agreement, error)
	List(ctx context.Context) ([]Agreement, error)
	Activate(ctx context.Context, id string) (Agreement, error)
	Suspend(ctx context.Context, id string) (Agreement, error)
	End(ctx context.Context, id string) (Agreement, error)
	// ForProvider returns the agreements whose provider is practice ODS,
	// with consumer groups expanded into Consumers: the input of Decide.
	ForProvider(ctx context.Context, practice string) ([]Agreement, error)
	PutGroup(ctx context.Context, name string, members []string) error
	Group(ctx context.Context, name string) ([]string, error)
}

// ConsentStore holds recorded consents to view.
type ConsentStore interface {
	PutConsent(ctx context.Context, c *ViewConsent) error
	GetConsent(ctx context.Context, id string) (*ViewConsent, error)
}

// Bucket names (all prefixed consent_).
var (
	bucketAgreements = []byte("consent_agreements")
	bucketGroups     = []byte("consent_groups")
	bucketConsents   = []byte("consent_view")
)

// BoltStore is the bbolt AgreementStore and ConsentStore. It shares an open
// database with other stores: it only touches buckets prefixed "consent_".
//
// Consents to view are read on every patient-context request, so the store
// keeps them decoded (viewCache): its own writes invalidate them, which is
// every write there is, as long as it is the one BoltStore of its database
// (bbolt's file lock keeps other processes out; cmd/gpgate makes one).
type BoltStore struct {
	db    *bolt.DB
	now   func() time.Time
	views viewCache
}

// NewBoltStore creates the consent_ buckets in db if needed. now is the
// clock for created/updated stamps (time.Now when nil).
func NewBoltStore(db *bolt.DB, now func() time.Time) (*BoltStore, error) {
	if now == nil {
		now = time.Now
	}
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketAgreements, bucketGroups, bucketConsents} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("consent: create buckets: %w", err)
	}
	return &BoltStore{db: db, now: now, views: viewCache{max: viewCacheBytes}}, nil
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func notFound(what, id string) error {
	return fhir.Errorf(fhir.CodeReferenceNotFound, "no %s with id %q", what, truncate(id, 64))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func decodeAgreement(v []byte) (Agreement, error) {
	a, err := ParseAgreement(v)
	if err != nil {
		return Agreement{}, fhir.Internal(fmt.Errorf("consent: stored agreement unreadable: %w", err))
	}
	var w agreementWire
	_ = json.Unmarshal(v, &w)
	a.Created, _ = parseTime(w.Created)
	a.Updated, _ = parseTime(w.Updated)
	return a, nil
}

// Add validates and stores a new agreement. An empty ID gets a random one;
// an existing ID is refused (INVALID_PARAMETER).
func (s *BoltStore) Add(ctx context.Context, a Agreement) (Agreement, error) {
	if err := a.Validate(); err != nil {
		return Agreement{}, err
	}
	if a.ID == "" {
		a.ID = newID()
	}
	now := s.now().UTC().Truncate(time.Second)
	a.Created, a.Updated = now, now
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAgreements)
		if b.Get([]byte(a.ID)) != nil {
			return DuplicateAgreementError(a.ID)
		}
		return b.Put([]byte(a.ID), AgreementJSON(a))
	})
	if err != nil {
		return Agreement{}, wrap(err)
	}
	return a, nil
}

func wrap(err error) error {
	var fe *fhir.Error
	if errors.As(err, &fe) {
		return fe
	}
	return fhir.Internal(err)
}

// Get returns the agreement with id as stored (groups not expanded).
func (s *BoltStore) Get(ctx context.Context, id string) (Agreement, error) {
	var a Agreement
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAgreements).Get([]byte(id))
		if v == nil {
			return notFound("agreement", id)
		}
		var err error
		a, err = decodeAgreement(v)
		return err
	})
	return a, wrap0(err)
}

func wrap0(err error) error {
	if err == nil {
		return nil
	}
	return wrap(err)
}

// List returns every agreement, ordered by id.
func (s *BoltStore) List(ctx context.Context) ([]Agreement, error) {
	var out []Agreement
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAgreements).ForEach(func(_, v []byte) error {
			a, err := decodeAgreement(v)
			if err != nil {
				return err
			}
			out = append(out, a)
			return nil
		})
	})
	return out, wrap0(err)
}

// transitions are the allowed status changes.
var transitions = map[Status]map[Status]bool{
	StatusActive:    {StatusDraft: true, StatusSuspended: true, StatusActive: true},
	StatusSuspended: {StatusActive: true, StatusSuspended: true},
	StatusEnded:     {StatusDraft: true, StatusActive: true, StatusSuspended: true, StatusEnded: true},
}

func (s *BoltStore) setStatus(id string, to Status) (Agreement, error) {
	var a Agreement
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAgreements)
		v := b.Get([]byte(id))
		if v == nil {
			return notFound("agreement", id)
		}
		var err error
		if a, err = decodeAgreement(v); err != nil {
			return err
		}
		if !CanTransition(a.Status, to) {
			return TransitionError(a, to)
		}
		a.Status = to
		a.Updated = s.now().UTC().Truncate(time.Second)
		return b.Put([]byte(a.ID), AgreementJSON(a))
	})
	return a, wrap0(err)
}

// Activate makes a draft or suspended agreement active.
func (s *BoltStore) Activate(ctx context.Context, id string) (Agreement, error) {
	return s.setStatus(id, StatusActive)
}

// Suspend suspends an active agreement; the next request is refused.
func (s *BoltStore) Suspend(ctx context.Context, id string) (Agreement, error) {
	return s.setStatus(id, StatusSuspended)
}

// End ends an agreement for good.
func (s *BoltStore) End(ctx context.Context, id string) (Agreement, error) {
	return s.setStatus(id, StatusEnded)
}

// ForProvider returns the agreements of a provider practice with consumer
// groups expanded, in one read transaction.
func (s *BoltStore) ForProvider(ctx context.Context, practice string) ([]Agreement, error) {
	var out []Agreement
	err := s.db.View(func(tx *bolt.Tx) error {
		groups := tx.Bucket(bucketGroups)
		return tx.Bucket(bucketAgreements).ForEach(func(_, v []byte) error {
			// Cheap pre-filter before the full parse.
			var head struct {
				Provider string `json:"provider"`
			}
			if json.Unmarshal(v, &head) != nil || head.Provider != practice {
				return nil
			}
			a, err := decodeAgreement(v)
			if err != nil {
				return err
			}
			if a.ConsumerGroup != "" {
				var members []string
				if g := groups.Get([]byte(a.ConsumerGroup)); g != nil {
					if err := json.Unmarshal(g, &members); err != nil {
						return fhir.Internal(fmt.Errorf("consent: stored group unreadable: %w", err))
					}
				}
				a.Consumers = append(append([]string(nil), a.Consumers...), members...)
			}
			out = append(out, a)
			return nil
		})
	})
	return out, wrap0(err)
}

// PutGroup stores (or replaces) a named consumer group of ODS codes.
func (s *BoltStore) PutGroup(ctx context.Context, name string, members []string) error {
	ms, err := GroupMembers(name, members)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(ms)
	return wrap0(s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketGroups).Put([]byte(name), b) }))
}

// Group returns a group's members.
func (s *BoltStore) Group(ctx context.Context, name string) ([]string, error) {
	var ms []string
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketGroups).Get([]byte(name))
		if v == nil {
			return notFound("group", name)
		}
		return json.Unmarshal(v, &ms)
	})
	return ms, wrap0(err)
}

// PutConsent stores a consent to view.
func (s *BoltStore) PutConsent(ctx context.Context, c *ViewConsent) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fhir.Internal(err)
	}
	// Invalidated whether or not the write commits: a reader that read the
	// old value before it cannot put it back (viewCache.put's generation).
	defer s.views.invalidate(c.ID)
	return wrap0(s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketConsents).Put([]byte(c.ID), b) }))
}

// GetConsent returns a stored consent to view, or REFERENCE_NOT_FOUND. The
// caller owns the returned value (a copy of the cached one).
func (s *BoltStore) GetConsent(ctx context.Context, id string) (*ViewConsent, error) {
	if c, ok := s.views.get(id); ok {
		return c, nil
	}
	gen := s.views.generation()
	var c ViewConsent
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketConsents).Get([]byte(id))
		if v == nil {
			return notFound("Consent", id)
		}
		return json.Unmarshal(v, &c)
	})
	if err != nil {
		return nil, wrap(err)
	}
	s.views.put(gen, &c) // keeps a copy
	return &c, nil
}

package smart

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/gpgate/gpgate/fhir"
	"go.etcd.io/bbolt"
)

// Bucket names; the bbolt file may be shared with other packages.
var (
	bucketClients = []byte("smart_clients")
	bucketKeys    = []byte("smart_keys")
	ringKey       = []byte("ring")
)

// BoltStore is the bbolt ClientStore and KeyStore.
type BoltStore struct {
	db    *bbolt.DB
	owned bool
	// Now stamps Created/Updated; defaults to time.Now.
	Now func() time.Time
}

var (
	_ ClientStore = (*BoltStore)(nil)
	_ KeyStore    = (*BoltStore)(nil)
)

// NewBoltStore uses an already open bbolt database (shared with other
// packages is fine: the buckets are prefixed smart_). Close does not close db.
func NewBoltStore(db *bbolt.DB) (*BoltStore, error) {
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketClients, bucketKeys} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("smart: create buckets: %w", err)
	}
	return &BoltStore{db: db, Now: time.Now}, nil
}

// OpenBolt opens (creating if needed) a bbolt file of its own; Close closes it.
func OpenBolt(path string) (*BoltStore, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("smart: open %s: %w", path, err)
	}
	st, err := NewBoltStore(db)
	if err != nil {
		db.Close()
		return nil, err
	}
	st.owned = true
	return st, nil
}

// Close closes the database if OpenBolt opened it.
func (s *BoltStore) Close() error {
	if s.owned {
		return s.db.Close()
	}
	return nil
}

func (s *BoltStore) now() time.Time { return s.Now().UTC() }

// AddClient registers a new client (validated by ValidateClient). Created
// and Updated are set; an existing id is an error.
func (s *BoltStore) AddClient(ctx context.Context, c *Client) error {
	if err := ValidateClient(c); err != nil {
		return err
	}
	cp := *c
	cp.Created, cp.Updated = s.now(), s.now()
	b, err := json.Marshal(&cp)
	if err != nil {
		return fhir.Internal(err)
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(bucketClients)
		if bk.Get([]byte(cp.ID)) != nil {
			return fhir.Errorf(fhir.CodeBadRequest, "client %q is already registered", cp.ID)
		}
		return bk.Put([]byte(cp.ID), b)
	})
}

// GetClient returns the client with id, or a not-found error (errors.Is
// ErrClientNotFound).
func (s *BoltStore) GetClient(ctx context.Context, id string) (*Client, error) {
	var c *Client
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketClients).Get([]byte(id))
		if v == nil {
			return ClientNotFound(id)
		}
		c = new(Client)
		return json.Unmarshal(v, c)
	})
	return c, err
}

// ListClients returns every client, by id.
func (s *BoltStore) ListClients(ctx context.Context) ([]*Client, error) {
	var out []*Client
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketClients).ForEach(func(k, v []byte) error {
			c := new(Client)
			if err := json.Unmarshal(v, c); err != nil {
				return fmt.Errorf("client %q: %w", k, err)
			}
			out = append(out, c)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

func (s *BoltStore) update(id string, f func(c *Client) error) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(bucketClients)
		v := bk.Get([]byte(id))
		if v == nil {
			return ClientNotFound(id)
		}
		c := new(Client)
		if err := json.Unmarshal(v, c); err != nil {
			return err
		}
		if err := f(c); err != nil {
			return err
		}
		c.Updated = s.now()
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		return bk.Put([]byte(id), b)
	})
}

// DisableClient stops the client getting tokens (tokens already issued live
// out their at most 5 minutes).
func (s *BoltStore) DisableClient(ctx context.Context, id string) error {
	return s.update(id, func(c *Client) error { c.Enabled = false; return nil })
}

// EnableClient re-enables a disabled client.
func (s *BoltStore) EnableClient(ctx context.Context, id string) error {
	return s.update(id, func(c *Client) error { c.Enabled = true; return nil })
}

// RotateClientKey replaces the client's keys with the inline JWKS newJWKS
// (a JWKS URL, if any, is dropped). To roll over without downtime, give a
// set holding both the old and the new key, then rotate again later with
// the new key only.
func (s *BoltStore) RotateClientKey(ctx context.Context, id string, newJWKS []byte) error {
	if _, err := ParseClientJWKS(newJWKS); err != nil {
		return err
	}
	return s.update(id, func(c *Client) error {
		c.JWKS, c.JWKSURL = append(json.RawMessage(nil), newJWKS...), ""
		return nil
	})
}

// SigningKeys returns gpgate's stored signing keys.
func (s *BoltStore) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	var out []SigningKey
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketKeys).Get(ringKey)
		if v == nil {
			return nil
		}
		return json.Unmarshal(v, &out)
	})
	return out, err
}

// SetSigningKeys replaces the stored signing keys in one transaction.
func (s *BoltStore) SetSigningKeys(ctx context.Context, keys []SigningKey) error {
	b, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(bucketKeys)
		if v := bk.Get(ringKey); v != nil {
			var stored []SigningKey
			if err := json.Unmarshal(v, &stored); err != nil {
				return err
			}
			if err := CheckKeysReplace(stored, keys); err != nil {
				return err
			}
		}
		return bk.Put(ringKey, b)
	})
}

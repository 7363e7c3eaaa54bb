// Package users holds the Shared Record Viewer's local clinician accounts:
// the account record and Argon2id password hashing. Stores live in
// sub-packages (boltstore); the viewer declares the small interface it
// reads accounts through.
package users

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/gpgate/gpgate/fhir"
)

// User is one local clinician account. It belongs to one consumer
// organisation and carries the clinician's SDS user id, which the viewer
// puts into every request to the record-access core (and so the audit).
type User struct {
	Username string    `json:"username"`
	Name     string    `json:"name,omitempty"` // shown in the viewer and on printouts
	Org      string    `json:"org"`            // consumer organisation ODS code
	Role     string    `json:"role"`           // e.g. a national RBAC role code or name
	SDSID    string    `json:"sdsId"`          // SDS user id
	Hash     string    `json:"hash"`           // PHC-encoded Argon2id hash
	Disabled bool      `json:"disabled,omitempty"`
	Created  time.Time `json:"created"`
	// PasswordSet is when the password was last set: sessions that began
	// before it end (a reset signs the user out everywhere).
	PasswordSet time.Time `json:"passwordSet"`
	Updated     time.Time `json:"updated"`
}

// ErrNotFound is returned for an unknown username.
var ErrNotFound = errors.New("users: no such user")

// ErrExists is returned when adding a username that is taken.
var ErrExists = errors.New("users: username already exists")

// Validate checks the account's fields (not its password).
func (u *User) Validate() error {
	if err := ValidUsername(u.Username); err != nil {
		return err
	}
	if !fhir.ValidODS(u.Org) {
		return fmt.Errorf("organisation %q is not an ODS code (3 to 12 upper-case letters and digits)", u.Org)
	}
	if u.Role == "" || len(u.Role) > 64 {
		return fmt.Errorf("role is required (at most 64 characters)")
	}
	if !validSDS(u.SDSID) {
		return fmt.Errorf("SDS user id must be 6 to 20 digits")
	}
	if len(u.Name) > 128 {
		return fmt.Errorf("name is at most 128 characters")
	}
	return nil
}

// ValidUsername accepts 3 to 64 characters of letters, digits and . _ - @.
// Usernames are compared case-insensitively: store them with Normalise.
func ValidUsername(s string) error {
	if len(s) < 3 || len(s) > 64 {
		return fmt.Errorf("username must be 3 to 64 characters")
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '@') {
			return fmt.Errorf("username may hold letters, digits and . _ - @ only")
		}
	}
	return nil
}

// Normalise is the stored and looked-up form of a username.
func Normalise(username string) string { return strings.ToLower(strings.TrimSpace(username)) }

func validSDS(s string) bool {
	if len(s) < 6 || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Params are Argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
	SaltLen int
	KeyLen  uint32
}

// DefaultParams follow the OWASP password storage guidance for Argon2id
// (46 MiB, one pass, one lane): about 50 ms on one core here, and bounded
// memory when several sign-ins arrive at once.
var DefaultParams = Params{Memory: 46 * 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// MinPasswordLen and MaxPasswordLen bound a password (NCSC: length over
// complexity; a long upper bound so passphrases fit).
const (
	MinPasswordLen = 12
	MaxPasswordLen = 256
)

// CheckPasswordPolicy reports why a new password is not acceptable.
func CheckPasswordPolicy(pw string) error {
	n := utf8.RuneCountInString(pw)
	if n < MinPasswordLen {
		return fmt.Errorf("password must be at least %d characters", MinPasswordLen)
	}
	if len(pw) > MaxPasswordLen {
		return fmt.Errorf("password must be at most %d bytes", MaxPasswordLen)
	}
	return nil
}

// Hash returns the PHC string of pw under p with a fresh random salt.
func Hash(pw string, p Params) (string, error) {
	if p.SaltLen < 16 || p.KeyLen < 16 || p.Memory < 8*uint32(p.Threads) || p.Time < 1 || p.Threads < 1 {
		return "", fmt.Errorf("users: Argon2id parameters too weak")
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// maxMemory bounds what a stored hash may ask Verify to spend (1 GiB).
const maxMemory = 1 << 20

// Verify reports whether pw matches the PHC string, comparing in constant
// time. A malformed hash never matches.
func Verify(pw, encoded string) bool {
	p, salt, key, err := decode(encoded)
	if err != nil || len(pw) > MaxPasswordLen {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1
}

// NeedsRehash reports whether the hash was made with parameters other than p
// (re-hash it at the next successful sign-in).
func NeedsRehash(encoded string, p Params) bool {
	q, _, _, err := decode(encoded)
	return err != nil || q.Memory != p.Memory || q.Time != p.Time || q.Threads != p.Threads
}

// dummyHashes are verified against when the username is unknown, so a
// wrong username costs what a wrong password costs.
var dummyHashes sync.Map // Params -> string

// VerifyDummy spends the time of one Verify under p and returns false.
func VerifyDummy(pw string, p Params) bool {
	h, ok := dummyHashes.Load(p)
	if !ok {
		s, err := Hash("gpgate-viewer-no-such-user", p)
		if err != nil {
			s, _ = Hash("gpgate-viewer-no-such-user", DefaultParams)
		}
		h, _ = dummyHashes.LoadOrStore(p, s)
	}
	Verify(pw, h.(string))
	return false
}

func decode(s string) (Params, []byte, []byte, error) {
	bad := fmt.Errorf("users: malformed password hash")
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return Params{}, nil, nil, bad
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return Params{}, nil, nil, bad
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return Params{}, nil, nil, bad
	}
	if p.Memory == 0 || p.Memory > maxMemory || p.Time == 0 || p.Time > 16 || p.Threads == 0 {
		return Params{}, nil, nil, bad
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return Params{}, nil, nil, bad
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return Params{}, nil, nil, bad
	}
	p.SaltLen, p.KeyLen = len(salt), uint32(len(key))
	return p, salt, key, nil
}

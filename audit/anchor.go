package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Head is a signed checkpoint: the chain hash after entry Seq (all zeros for
// Seq 0, the empty log), when it was signed, by which node and key. The
// writer stores one in the log every Options.CheckpointEvery entries or
// Options.CheckpointInterval, on Close, and exports the newest outside the
// log (Options.HeadFile, Options.HeadSink).
type Head struct {
	Seq   uint64
	Hash  [32]byte
	Time  time.Time
	Node  string
	KeyID string // KeyID of the signing key's public half
	Sig   []byte // Ed25519 signature over the text before " sig="
}

// headMagic opens every head line; it names the format and version and
// separates these signatures from any other use of the key.
const headMagic = "gpgate-audit-head/1"

// maxHeadLine bounds a head line (the longest valid one is well under it).
const maxHeadLine = 1024

// KeyID names a checkpoint key: the first 8 bytes of the SHA-256 of the
// public key, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// message is the signed text: every field but the signature.
func (h *Head) message() []byte {
	b := make([]byte, 0, 200)
	b = append(b, headMagic...)
	b = append(b, " seq="...)
	b = strconv.AppendUint(b, h.Seq, 10)
	b = append(b, " hash="...)
	b = hex.AppendEncode(b, h.Hash[:])
	b = append(b, " time="...)
	b = h.Time.UTC().AppendFormat(b, timeFormat)
	b = append(b, " node="...)
	b = append(b, url.QueryEscape(h.Node)...)
	b = append(b, " key="...)
	b = append(b, h.KeyID...)
	return b
}

// MarshalText renders the head as one line (no newline): the form of the
// head file, of Sink deliveries and of log lines, e.g.
//
//	gpgate-audit-head/1 seq=1024 hash=<64 hex> time=2026-01-02T03:04:05.123Z node=gp-1 key=<16 hex> sig=<base64url>
func (h Head) MarshalText() ([]byte, error) {
	b := h.message()
	b = append(b, " sig="...)
	return base64.RawURLEncoding.AppendEncode(b, h.Sig), nil
}

// String is MarshalText as a string.
func (h Head) String() string {
	b, _ := h.MarshalText()
	return string(b)
}

// ParseHead parses the line MarshalText writes (one trailing newline
// allowed). It accepts only the canonical form, so the signed bytes are
// exactly the bytes read; it does not check the signature (Verify does).
func ParseHead(b []byte) (Head, error) {
	var h Head
	b = bytes.TrimSuffix(b, []byte("\n"))
	if len(b) > maxHeadLine {
		return h, errors.New("audit head: line too long")
	}
	fields := strings.Split(string(b), " ")
	names := []string{"", "seq=", "hash=", "time=", "node=", "key=", "sig="}
	if len(fields) != len(names) || fields[0] != headMagic {
		return h, fmt.Errorf("audit head: not a %s line", headMagic)
	}
	val := make([]string, len(names))
	for i := 1; i < len(names); i++ {
		v, ok := strings.CutPrefix(fields[i], names[i])
		if !ok {
			return h, fmt.Errorf("audit head: field %d is not %s", i, strings.TrimSuffix(names[i], "="))
		}
		val[i] = v
	}
	var err error
	if h.Seq, err = strconv.ParseUint(val[1], 10, 64); err != nil {
		return h, errors.New("audit head: bad seq")
	}
	if len(val[2]) != 64 {
		return h, errors.New("audit head: bad hash")
	}
	if _, err := hex.Decode(h.Hash[:], []byte(val[2])); err != nil {
		return h, errors.New("audit head: bad hash")
	}
	if h.Time, err = time.Parse(timeFormat, val[3]); err != nil {
		return h, errors.New("audit head: bad time")
	}
	h.Time = h.Time.UTC()
	if h.Node, err = url.QueryUnescape(val[4]); err != nil {
		return h, errors.New("audit head: bad node")
	}
	if len(val[5]) != 16 {
		return h, errors.New("audit head: bad key id")
	}
	if _, err := hex.DecodeString(val[5]); err != nil {
		return h, errors.New("audit head: bad key id")
	}
	h.KeyID = val[5]
	if h.Sig, err = base64.RawURLEncoding.DecodeString(val[6]); err != nil || len(h.Sig) != ed25519.SignatureSize {
		return h, errors.New("audit head: bad signature encoding")
	}
	if again, _ := h.MarshalText(); !bytes.Equal(again, b) {
		return h, errors.New("audit head: not in canonical form")
	}
	return h, nil
}

// Verify checks the signature with the key among keys whose KeyID the head
// names.
func (h *Head) Verify(keys []ed25519.PublicKey) error {
	for _, k := range keys {
		if KeyID(k) == h.KeyID {
			if !ed25519.Verify(k, h.message(), h.Sig) {
				return errors.New("signature does not verify (altered or forged)")
			}
			return nil
		}
	}
	return fmt.Errorf("signed by key %s, which is not a trusted audit key", h.KeyID)
}

// signHead signs the chain state after entry seq.
func signHead(key ed25519.PrivateKey, seq uint64, hash [32]byte, t time.Time, node string) Head {
	h := Head{Seq: seq, Hash: hash, Time: t.UTC(), Node: node, KeyID: KeyID(key.Public().(ed25519.PublicKey))}
	h.Sig = ed25519.Sign(key, h.message())
	return h
}

// HeadSink receives every signed head once it is durable in the log, e.g. a
// forwarder to syslog or a SIEM: a copy held elsewhere is what lets an
// auditor catch a log and head file rolled back together. It is called from
// one goroutine, never on the request path; a slow sink delays only later
// heads (they coalesce: the newest wins).
type HeadSink interface {
	PublishHead(ctx context.Context, h Head) error
}

// LogHeadSink publishes heads as structured log lines (msg "audit head",
// attribute head = the signed line), for deployments whose logs are shipped
// off the host. A head carries no patient data.
type LogHeadSink struct{ Logger *slog.Logger }

// PublishHead logs h at Info.
func (l LogHeadSink) PublishHead(ctx context.Context, h Head) error {
	lg := l.Logger
	if lg == nil {
		lg = slog.Default()
	}
	lg.InfoContext(ctx, "audit head", "head", h.String(), "seq", h.Seq)
	return nil
}

// ReadHeadFile reads and parses a head file; it does not check the
// signature. A missing file is an error wrapping fs.ErrNotExist.
func ReadHeadFile(path string) (Head, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Head{}, err
	}
	h, err := ParseHead(b)
	if err != nil {
		return Head{}, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// WriteHeadFile replaces the head file atomically: a temporary file in the
// same directory, fsynced, renamed over path, and the directory fsynced. A
// crash leaves the old head or the new one, never neither.
func WriteHeadFile(path string, h Head) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	b, _ := h.MarshalText()
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// LoadOrCreateKey returns the Ed25519 audit key in path (PKCS #8, PEM
// "PRIVATE KEY"), creating it with mode 0600 (and its directory 0700) when
// the file does not exist. It refuses a key file that group or others may
// read or write: whoever holds the key can sign a rewritten log.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("audit key %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("audit key %s has mode %04o: group or others may read or write it (chmod 600 it, and check it was not copied)", path, perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParsePrivateKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("audit key %s: %w", path, err)
	}
	return k, nil
}

func createKey(path string) (ed25519.PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, err
	}
	return k, syncDir(dir)
}

// ParsePrivateKeyPEM parses a PEM "PRIVATE KEY" block holding an Ed25519
// key in PKCS #8.
func ParsePrivateKeyPEM(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM PRIVATE KEY")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want Ed25519", k)
	}
	return ek, nil
}

// ParsePublicKeyPEM parses a PEM "PUBLIC KEY" (PKIX) Ed25519 key, or takes
// the public half of a "PRIVATE KEY".
func ParsePublicKeyPEM(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("not PEM")
	}
	switch blk.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, err
		}
		ek, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("key is %T, want Ed25519", k)
		}
		return ek, nil
	case "PRIVATE KEY":
		k, err := ParsePrivateKeyPEM(b)
		if err != nil {
			return nil, err
		}
		return k.Public().(ed25519.PublicKey), nil
	}
	return nil, fmt.Errorf("PEM block %q is not a PUBLIC KEY or PRIVATE KEY", blk.Type)
}

// LoadPublicKey reads a public (or private) audit key file.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParsePublicKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// MarshalPublicKeyPEM renders pub as a PEM "PUBLIC KEY", the form auditors
// verify with (gpgate audit verify --pub).
func MarshalPublicKeyPEM(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// within reports whether path is inside dir (or is dir), comparing
// absolute paths with symlinks resolved as far as the paths exist.
func within(path, dir string) bool {
	rel, err := filepath.Rel(resolve(dir), resolve(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// resolve makes p absolute and resolves symlinks in its longest existing
// prefix (the rest need not exist yet).
func resolve(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		p = a
	}
	rest := ""
	for cur := p; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

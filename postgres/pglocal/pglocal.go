// Package pglocal runs a throwaway PostgreSQL server from the Debian
// binaries (package postgresql): initdb into a directory, start it on a
// loopback port, stop and restart it. It is for tests and for `make
// cluster`, never for production (which runs PostgreSQL as its operators
// do, with replicas and backups). When run as root it runs the server as
// the "postgres" system user, as PostgreSQL refuses to run as root.
package pglocal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNoBinaries is returned when initdb or postgres cannot be found.
var ErrNoBinaries = errors.New("pglocal: PostgreSQL server binaries (initdb, postgres) not found: apt-get install postgresql")

// Options configure a server.
type Options struct {
	// Dir holds the cluster (Dir/data) and its log (Dir/postgres.log).
	// Created if needed; a cluster already there is reused.
	Dir string
	// Port on 127.0.0.1; 0 picks a free one.
	Port int
	// Fast turns off fsync (a crash of the machine could lose commits): for
	// unit tests only. synchronous_commit stays on (the audit log refuses a
	// database without it). The cluster keeps PostgreSQL's durable defaults.
	Fast bool
	// Settings are further -c name=value settings.
	Settings map[string]string
}

// Server is a running (or stopped) local PostgreSQL.
type Server struct {
	opt  Options
	bin  string
	cred *syscall.Credential
	cmd  *exec.Cmd
	done chan struct{}
	// User is the superuser (trust authentication on loopback).
	User string
	Port int
}

// BinDir finds the directory of initdb and postgres: $PG_BIN, then PATH,
// then the newest /usr/lib/postgresql/*/bin.
func BinDir() (string, error) {
	if d := os.Getenv("PG_BIN"); d != "" {
		if ok(filepath.Join(d, "postgres")) && ok(filepath.Join(d, "initdb")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		d := filepath.Dir(p)
		if r, err := filepath.EvalSymlinks(p); err == nil {
			d = filepath.Dir(r)
		}
		if ok(filepath.Join(d, "initdb")) {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if ok(filepath.Join(d, "postgres")) && ok(filepath.Join(d, "initdb")) {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func ok(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// New prepares a server (initdb when Dir/data holds no cluster) without
// starting it.
func New(opt Options) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	if opt.Dir == "" {
		return nil, errors.New("pglocal: Options.Dir is required")
	}
	s := &Server{opt: opt, bin: bin, User: "gpgate", Port: opt.Port}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, errors.New("pglocal: running as root and there is no postgres user to run the server as (apt-get install postgresql creates it)")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if err := os.MkdirAll(opt.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := s.chown(opt.Dir); err != nil {
		return nil, err
	}
	// The server user must reach Dir: make its parents traversable when
	// they are private temp directories of root.
	if s.cred != nil {
		for d := filepath.Dir(opt.Dir); d != "/" && d != "."; d = filepath.Dir(d) {
			if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
				_ = os.Chmod(d, fi.Mode().Perm()|0o711)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(s.dataDir(), "PG_VERSION")); err != nil {
		cmd := exec.Command(filepath.Join(bin, "initdb"), "-D", s.dataDir(), "-U", s.User, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
		cmd.Dir = opt.Dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("pglocal: initdb: %v: %s", err, lastLines(out, 5))
		}
	}
	return s, nil
}

func (s *Server) chown(p string) error {
	if s.cred == nil {
		return nil
	}
	return os.Chown(p, int(s.cred.Uid), int(s.cred.Gid))
}

func (s *Server) dataDir() string { return filepath.Join(s.opt.Dir, "data") }

// LogFile is the server's log.
func (s *Server) LogFile() string { return filepath.Join(s.opt.Dir, "postgres.log") }

// URL is the connection URL of database db.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", s.User, s.Port, db)
}

// Start starts the server and waits until it accepts connections.
func (s *Server) Start(ctx context.Context) error {
	if s.cmd != nil {
		return errors.New("pglocal: already running")
	}
	if s.Port == 0 {
		p, err := freePort()
		if err != nil {
			return err
		}
		s.Port = p
	}
	args := []string{"-D", s.dataDir(), "-p", strconv.Itoa(s.Port), "-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=", "-c", "max_connections=200", "-c", "shared_buffers=128MB"}
	if s.opt.Fast {
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off")
	}
	keys := make([]string, 0, len(s.opt.Settings))
	for k := range s.opt.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+s.opt.Settings[k])
	}
	logf, err := os.OpenFile(s.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	var from int64
	if fi, err := logf.Stat(); err == nil {
		from = fi.Size()
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = s.opt.Dir
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("pglocal: start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			// accepting TCP is not yet accepting sessions: wait for the
			// startup to finish (the log says so)
			if b, _ := os.ReadFile(s.LogFile()); int64(len(b)) > from && strings.Contains(string(b[from:]), "ready to accept connections") {
				return nil
			}
		}
		select {
		case <-done:
			s.cmd = nil
			b, _ := os.ReadFile(s.LogFile())
			return fmt.Errorf("pglocal: postgres exited at start: %s", lastLines(b, 10))
		case <-ctx.Done():
			_ = s.Stop()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = s.Stop()
			return errors.New("pglocal: postgres did not start within 30 s")
		}
	}
}

// Stop shuts the server down ("fast" shutdown: SIGINT) and waits for it.
func (s *Server) Stop() error { return s.signal(syscall.SIGINT) }

// Kill stops the server abruptly ("immediate" shutdown: SIGQUIT, crash
// recovery at the next start).
func (s *Server) Kill() error { return s.signal(syscall.SIGQUIT) }

func (s *Server) signal(sig syscall.Signal) error {
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	s.cmd = nil
	return nil
}

// Pid is the postmaster's process id (0 when stopped).
func (s *Server) Pid() int {
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

package audit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// The crash test runs this test binary a second time as a load generator
// (crashChildEnv names the database file), kills it with SIGKILL while it
// writes, and checks the file.
const crashChildEnv = "GPGATE_AUDIT_CRASH_CHILD"

// crashKeyEnv names the key directory: the child anchors the log (key,
// exported head) and runs a forwarder that prints "F seq" per delivery.
const crashKeyEnv = "GPGATE_AUDIT_CRASH_KEYDIR"

func crashOptions(keyDir string) Options {
	return Options{KeyFile: filepath.Join(keyDir, "audit.key"), HeadFile: filepath.Join(keyDir, "audit.head"),
		CheckpointEvery: 64, CheckpointInterval: 10 * time.Millisecond}
}

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		os.Exit(3) // unreachable: the child runs until killed
	}
	code := m.Run()
	cleanup100k()
	os.Exit(code)
}

// crashChild records from many goroutines without end and writes
// "seq writer n\n" to stdout the moment each Record returns.
func crashChild(path string) {
	s, err := Open(path, crashOptions(os.Getenv(crashKeyEnv)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	_, err = s.Forward(ForwardOptions{Name: "crash-trail", CursorEvery: 5 * time.Millisecond,
		To: DelivererFunc(func(ctx context.Context, e Entry) error {
			mu.Lock()
			os.Stdout.WriteString(fmt.Sprintf("F %d\n", e.Seq))
			mu.Unlock()
			return nil
		})})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child forward:", err)
		os.Exit(2)
	}
	for w := range 32 {
		go func() {
			for n := 0; ; n++ {
				e := &fhir.AuditEntry{
					Time: time.Now(), RequestID: fmt.Sprintf("w%d-%d", w, n), Action: "PatientRead",
					Interaction: "read", Outcome: fhir.OutcomeGranted, ClientID: "crash", NHS: "9000000009",
				}
				seq, err := s.Append(context.Background(), e)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child record:", err)
					os.Exit(2)
				}
				line := fmt.Sprintf("%d w%d %d\n", seq, w, n)
				mu.Lock()
				os.Stdout.WriteString(line) // unbuffered: one write per acknowledgement
				mu.Unlock()
			}
		}()
	}
	select {}
}

type ack struct {
	round  int
	seq    uint64
	writer string
	n      int
}

// TestCrashRecovery is the SIGKILL test (make crash-test runs it with -v).
// Rounds default to 3; AUDIT_CRASH_ROUNDS raises it.
func TestCrashRecovery(t *testing.T) {
	rounds := 3
	if v, err := strconv.Atoi(os.Getenv("AUDIT_CRASH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	path := filepath.Join(t.TempDir(), "audit.db")
	keyDir := t.TempDir()
	var all []ack
	delivered := map[uint64]bool{}
	for round := range rounds {
		acks := runCrashChild(t, path, keyDir, round, 300+round*500, delivered)
		t.Logf("round %d: %d acknowledged before SIGKILL, %d delivered so far", round, len(acks), len(delivered))
		all = append(all, acks...)
		checkCrashFile(t, path, keyDir, all)
	}
	checkForwarded(t, path, keyDir, delivered)
}

// checkForwarded: a forwarder started after the crashes delivers, with what
// the killed children delivered, every entry of the log: at least once,
// none lost between a delivery and its cursor write.
func checkForwarded(t *testing.T, path, keyDir string, delivered map[uint64]bool) {
	t.Helper()
	s, err := Open(path, crashOptions(keyDir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	head := s.Stats().Head
	cur, err := s.Cursor("crash-trail")
	must(t, err)
	for seq := uint64(1); seq <= cur; seq++ {
		if !delivered[seq] {
			t.Fatalf("entry %d is behind the durable cursor %d but was never delivered", seq, cur)
		}
	}
	var mu sync.Mutex
	redelivered := 0
	f, err := s.Forward(ForwardOptions{Name: "crash-trail", To: DelivererFunc(func(ctx context.Context, e Entry) error {
		mu.Lock()
		defer mu.Unlock()
		if delivered[e.Seq] {
			redelivered++
		}
		delivered[e.Seq] = true
		return nil
	})})
	must(t, err)
	waitFor(t, "the forwarder to catch up", func() bool { return f.Stats().Position == head })
	must(t, f.Close())
	mu.Lock()
	defer mu.Unlock()
	for seq := uint64(1); seq <= head; seq++ {
		if !delivered[seq] {
			t.Fatalf("entry %d of %d never delivered", seq, head)
		}
	}
	t.Logf("forwarder: %d entries, durable cursor was %d, %d redelivered after the last SIGKILL", head, cur, redelivered)
}

// runCrashChild starts the child, waits for at least minAcks
// acknowledgements (or one second), kills it with SIGKILL and returns every
// acknowledgement it printed.
func runCrashChild(t *testing.T, path, keyDir string, round, minAcks int, delivered map[uint64]bool) []ack {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path, crashKeyEnv+"="+keyDir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1<<16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var acks []ack
	parse := func(l string) {
		if seq, ok := strings.CutPrefix(l, "F "); ok {
			n, err := strconv.ParseUint(seq, 10, 64)
			if err != nil {
				t.Fatalf("child printed %q", l)
			}
			delivered[n] = true
			return
		}
		a := ack{round: round}
		if _, err := fmt.Sscanf(l, "%d %s %d", &a.seq, &a.writer, &a.n); err != nil {
			t.Fatalf("child printed %q", l)
		}
		acks = append(acks, a)
	}
	// up to 30 s for the child to start (a -race binary opening an anchored
	// log is slow), then one second of load
	deadline := time.After(30 * time.Second)
	started := false
	killed := false
	for !killed {
		select {
		case l, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("child exited before SIGKILL: %s", stderr.String())
			}
			parse(l)
			if !started && len(acks) > 0 {
				started = true
				deadline = time.After(time.Second)
			}
			if len(acks) >= minAcks {
				killed = true
			}
		case <-deadline:
			killed = true
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for l := range lines { // acknowledgements already in the pipe
		parse(l)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v %s", err, stderr.String())
	}
	if len(acks) == 0 {
		t.Fatalf("child acknowledged nothing: %s", stderr.String())
	}
	return acks
}

// checkCrashFile reopens the log: the chain verifies, every acknowledged
// entry is there under its sequence number, and each writer's entries appear
// in the order it wrote them.
func checkCrashFile(t *testing.T, path, keyDir string, acks []ack) {
	t.Helper()
	// the anchored log opens after SIGKILL: the exported head is never
	// ahead of the durable log
	s, err := Open(path, crashOptions(keyDir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	rep, err := s.Verify(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("Verify after SIGKILL = %+v %v", rep, err)
	}
	last := map[string]uint64{}
	lastN := map[string]int{}
	for _, a := range acks {
		w := fmt.Sprintf("round %d writer %s", a.round, a.writer)
		if a.seq > uint64(rep.Entries) {
			t.Fatalf("acknowledged seq %d beyond the %d entries on disk", a.seq, rep.Entries)
		}
		e, ok, err := s.Get(ctx, a.seq)
		if err != nil || !ok {
			t.Fatalf("acknowledged seq %d missing: %v", a.seq, err)
		}
		if want := fmt.Sprintf("%s-%d", a.writer, a.n); e.RequestID != want {
			t.Fatalf("seq %d holds %s, acknowledged as %s", a.seq, e.RequestID, want)
		}
		if prev, seen := last[w]; seen && (a.seq <= prev || a.n <= lastN[w]) {
			t.Fatalf("%s: seq %d (n=%d) after seq %d (n=%d)", w, a.seq, a.n, prev, lastN[w])
		}
		last[w], lastN[w] = a.seq, a.n
	}
}

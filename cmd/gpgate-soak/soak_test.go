package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSoakShort is `make soak` in little (20 s, 8 clients) for `make test`:
// zero 5xx, flat memory and goroutines, every answer audited, the chain
// verifies.
func TestSoakShort(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real server for 20 s")
	}
	bin := filepath.Join(t.TempDir(), "gpgate")
	if out, err := exec.Command("go", "build", "-o", bin, "../gpgate").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var out bytes.Buffer
	err := run(context.Background(), config{bin: bin, duration: 20 * time.Second, warmup: 5 * time.Second, clients: 8, patients: 40, out: &out})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "every one audited") {
		t.Fatal("the soak did not report its audit check")
	}
}

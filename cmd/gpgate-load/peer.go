package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// peerData is every resource gpgate answered at setup, to be loaded into
// the peer FHIR server so both serve the same records.
type peerData struct {
	mu      sync.Mutex
	seen    map[string]bool
	list    []json.RawMessage
	members map[string][]string // patient id -> "Type/id" of its $everything
}

func newPeerData() *peerData {
	return &peerData{seen: map[string]bool{}, members: map[string][]string{}}
}

// add keeps a resource; member names the patient whose $everything it is
// part of ("" for none).
func (p *peerData) add(member string, raw json.RawMessage) {
	var head struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
	}
	if json.Unmarshal(raw, &head) != nil || head.ResourceType == "" || head.ID == "" || head.ResourceType == "OperationOutcome" {
		return
	}
	key := head.ResourceType + "/" + head.ID
	p.mu.Lock()
	defer p.mu.Unlock()
	if member != "" {
		p.members[member] = append(p.members[member], key)
	}
	if p.seen[key] {
		return
	}
	p.seen[key] = true
	p.list = append(p.list, append(json.RawMessage(nil), raw...))
}

// peer is a running peer FHIR server: cmd/gpgate-load/peer/server.mjs,
// Medplum's FHIR router over its in-memory repository, loaded with the same
// resources.
type peer struct {
	cmd  *exec.Cmd
	url  string
	file string
}

// peerAvailable says why the peer cannot run, or "".
func peerAvailable(dir string) string {
	if _, err := exec.LookPath("node"); err != nil {
		return "node is not installed"
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@medplum", "fhir-router")); err != nil {
		return "the peer's npm packages are not installed (npm ci --prefix " + dir + ")"
	}
	return ""
}

// startPeer writes the resources to a file and starts node on it; it
// returns once the server has loaded them and listens.
func startPeer(ctx context.Context, dir string, data *peerData, log io.Writer) (*peer, error) {
	f, err := os.CreateTemp("", "gpgate-load-peer-*.json")
	if err != nil {
		return nil, err
	}
	data.mu.Lock()
	b, err := json.Marshal(map[string]any{"resources": data.list, "members": data.members})
	n := len(data.list)
	data.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(dir, "server.mjs"), "--records", f.Name(), "--port", "0")
	cmd.Stderr = log
	dieWithParent(cmd)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		os.Remove(f.Name())
		return nil, err
	}
	p := &peer{cmd: cmd, file: f.Name()}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				ready <- strings.TrimSpace(u)
			}
		}
	}()
	select {
	case u := <-ready:
		p.url = u
		fmt.Fprintf(log, "setup: peer: %d resources loaded, serving at %s\n", n, u)
		return p, nil
	case <-time.After(3 * time.Minute):
		p.stop()
		return nil, fmt.Errorf("the peer did not start in 3 minutes")
	}
}

func (p *peer) stop() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
	os.Remove(p.file)
}

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/gpgate/gpgate/adapters/gpconnect"
	"github.com/gpgate/gpgate/fhir"
)

// The demo's GP Connect practice: a live GP Connect source (mutual TLS,
// Spine headers, JWT, fan-out, guard, snapshots) whose provider is the
// emulator serve starts in process over the shared recorded EMIS records,
// its patients found through a recorded PDS.
const (
	demoGPCODS      = "Y98001"
	demoGPCName     = "Demo GP Connect practice (EMIS, emulated)"
	demoGPCFromASID = "200000000001" // gpgate
	demoGPCToASID   = "918999198001" // the emulated provider
	demoPKIDir      = "gpconnect"    // DATA/gpconnect: the demo CA, server and client certificates
	demoPDSDir      = "pds"          // DATA/pds: recorded PDS Patients naming the demo practices
)

// demoGPC is what demoGPConnect set up ("" ODS when it did not).
type demoGPC struct {
	ODS      string
	Recorded string
	Patients []fhir.NHSNumber
}

// findSharedGPConnect finds ../shared/testdata/gpconnect-stu3 beside the
// checkout: above the working directory, or above the executable.
func findSharedGPConnect() string {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, d := range starts {
		for {
			p := filepath.Join(d, "shared", "testdata", "gpconnect-stu3")
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				return p
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return ""
}

// demoGPConnect sets up the demo GP Connect practice in data: certificates,
// recorded PDS Patients for its patients, and its entry (with the PDS
// locator) in DATA/practices.json. recorded is the folder of structured
// records ("auto": ../shared/testdata/gpconnect-stu3 when present; "none":
// no GP Connect practice). Without records the practice is left out (and
// removed from the file if an earlier run put it there).
func demoGPConnect(ctx context.Context, data, recorded string, progress io.Writer) (*demoGPC, error) {
	path := filepath.Join(data, practicesFile)
	if recorded == "auto" {
		recorded = findSharedGPConnect()
		if recorded == "" {
			fmt.Fprintln(progress, "gpgate demo: ../shared/testdata/gpconnect-stu3 is absent: no GP Connect practice (the embedded practices are served as before)")
		}
	}
	if recorded == "none" {
		recorded = ""
	}
	if recorded == "" {
		return &demoGPC{}, dropDemoEntry(path)
	}
	recorded, err := filepath.Abs(recorded)
	if err != nil {
		return nil, err
	}
	src, err := gpconnect.NewRecorded(recorded, demoGPCODS)
	if err != nil {
		return nil, err
	}
	patients, err := src.Patients(ctx)
	if err != nil {
		return nil, err
	}
	if len(patients) == 0 {
		fmt.Fprintf(progress, "gpgate demo: %s holds no structured record gpgate can serve: no GP Connect practice\n", recorded)
		return &demoGPC{}, dropDemoEntry(path)
	}
	if err := demoPKI(filepath.Join(data, demoPKIDir), time.Now()); err != nil {
		return nil, fmt.Errorf("demo certificates: %w", err)
	}
	if err := demoPDS(filepath.Join(data, demoPDSDir), demoGPCODS, patients); err != nil {
		return nil, fmt.Errorf("demo PDS: %w", err)
	}
	c, err := loadForEdit(path)
	if err != nil {
		return nil, err
	}
	pki := func(f string) string { return filepath.Join(demoPKIDir, f) }
	entry := practiceConfig{ODS: demoGPCODS, Name: demoGPCName, Kind: "gpconnect",
		Cert: pki("client.pem"), Key: pki("client.key"), CA: pki("ca.pem"), FromASID: demoGPCFromASID, ToASID: demoGPCToASID,
		Emulator: &emulatorConfig{Recorded: recorded, Cert: pki("server.pem"), Key: pki("server.key"), ClientCA: pki("ca.pem")}}
	if i := indexOf(c, demoGPCODS); i >= 0 {
		c.Practices[i] = entry
	} else {
		c.Practices = append(c.Practices, entry)
	}
	switch {
	case c.PDS == nil:
		c.PDS = &pdsConfig{Recorded: demoPDSDir}
	case c.PDS.Recorded != demoPDSDir:
		fmt.Fprintf(progress, "gpgate demo: %s names another PDS locator: the GP Connect practice's patients are found only if it places them\n", path)
	}
	if err := writePracticesConfig(path, c); err != nil {
		return nil, err
	}
	return &demoGPC{ODS: demoGPCODS, Recorded: recorded, Patients: patients}, nil
}

func dropDemoEntry(path string) error {
	c, err := readPracticesConfig(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	i := indexOf(c, demoGPCODS)
	if i < 0 {
		return nil
	}
	c.Practices = append(c.Practices[:i], c.Practices[i+1:]...)
	if c.PDS != nil && c.PDS.Recorded == demoPDSDir {
		c.PDS = nil
	}
	return writePracticesConfig(path, c)
}

// demoPKI writes a private CA (its key is not kept), a server certificate
// for the emulator (127.0.0.1, localhost) and gpgate's client certificate,
// ECDSA P-256, files 0600 — unless all are there and valid for 30 days
// more.
func demoPKI(dir string, now time.Time) error {
	files := []string{"ca.pem", "server.pem", "server.key", "client.pem", "client.key"}
	if demoPKIValid(dir, files, now) {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := certTemplate("gpgate demo CA", now)
	caTmpl.IsCA, caTmpl.KeyUsage = true, x509.KeyUsageCertSign|x509.KeyUsageCRLSign
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(cn string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey, error) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		t := certTemplate(cn, now)
		t.KeyUsage, t.ExtKeyUsage = x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{usage}
		if usage == x509.ExtKeyUsageServerAuth {
			t.IPAddresses, t.DNSNames = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, []string{"localhost"}
		}
		der, err := x509.CreateCertificate(rand.Reader, t, ca, &k.PublicKey, caKey)
		return der, k, err
	}
	srvDER, srvKey, err := leaf("gpgate demo GP Connect provider", x509.ExtKeyUsageServerAuth)
	if err != nil {
		return err
	}
	cliDER, cliKey, err := leaf("gpgate demo consumer", x509.ExtKeyUsageClientAuth)
	if err != nil {
		return err
	}
	writes := []struct {
		name, typ string
		der       []byte
		key       *ecdsa.PrivateKey
	}{
		{"ca.pem", "CERTIFICATE", caDER, nil},
		{"server.pem", "CERTIFICATE", srvDER, nil},
		{"server.key", "", nil, srvKey},
		{"client.pem", "CERTIFICATE", cliDER, nil},
		{"client.key", "", nil, cliKey},
	}
	for _, w := range writes {
		der, typ := w.der, w.typ
		if w.key != nil {
			if der, err = x509.MarshalECPrivateKey(w.key); err != nil {
				return err
			}
			typ = "EC PRIVATE KEY"
		}
		if err := os.WriteFile(filepath.Join(dir, w.name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Join(dir, w.name), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func certTemplate(cn string, now time.Time) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: []string{"gpgate demo"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0), BasicConstraintsValid: true}
}

// demoPKIValid reports whether every file is there and each certificate
// chains to the CA and stays valid for 30 days more.
func demoPKIValid(dir string, files []string, now time.Time) bool {
	pool := x509.NewCertPool()
	var certs []*x509.Certificate
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return false
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return false
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil || now.AddDate(0, 0, 30).After(c.NotAfter) {
			return false
		}
		if f == "ca.pem" {
			pool.AddCert(c)
		} else {
			certs = append(certs, c)
		}
	}
	for _, c := range certs {
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return false
		}
	}
	return true
}

// demoPDS writes one recorded PDS Patient per patient, naming the practice
// as the current registration (NHS number and registration only: the
// demographics come from the practice's record).
func demoPDS(dir, ods string, patients []fhir.NHSNumber) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	return writePDSPatients(dir, ods, patients)
}

// writePDSPatients adds a recorded PDS Patient per patient to dir.
func writePDSPatients(dir, ods string, patients []fhir.NHSNumber) error {
	for _, n := range patients {
		p := map[string]any{
			"resourceType": "Patient", "id": string(n),
			"identifier": []any{map[string]any{"system": fhir.NHSNumberSystem, "value": string(n)}},
			"generalPractitioner": []any{map[string]any{"type": "Organization",
				"identifier": map[string]any{"system": fhir.ODSSystem, "value": ods, "period": map[string]any{"start": "2020-01-01"}}}},
		}
		b, _ := json.MarshalIndent(p, "", "  ")
		if err := os.WriteFile(filepath.Join(dir, string(n)+".json"), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

package gpconnect_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gpgate/gpgate/adapters/gpconnect"
	"github.com/gpgate/gpgate/adapters/gpconnect/emulator"
	"github.com/gpgate/gpgate/fhir"
)

// pki is a throwaway CA with a server and a client certificate, as PEM files.
type pki struct {
	dir                                string
	caFile, serverCert, serverKey      string
	clientCert, clientKey, otherCAFile string
	pool                               *x509.CertPool
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{dir: dir}
	ca, caKey := mkCert(t, nil, nil, "gpgate test CA", true)
	p.pool = x509.NewCertPool()
	p.pool.AddCert(ca)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Raw)
	sc, sk := mkCert(t, ca, caKey, "provider", false)
	p.serverCert = writePEM(t, dir, "server.pem", "CERTIFICATE", sc.Raw)
	p.serverKey = writeKey(t, dir, "server.key", sk)
	cc, ck := mkCert(t, ca, caKey, "gpgate", false)
	p.clientCert = writePEM(t, dir, "client.pem", "CERTIFICATE", cc.Raw)
	p.clientKey = writeKey(t, dir, "client.key", ck)
	other, _ := mkCert(t, nil, nil, "someone else's CA", true)
	p.otherCAFile = writePEM(t, dir, "other-ca.pem", "CERTIFICATE", other.Raw)
	return p
}

func mkCert(t testing.TB, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, cn string, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:        isCA, BasicConstraintsValid: true,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeKey(t testing.TB, dir, name string, k *ecdsa.PrivateKey) string {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name, "EC PRIVATE KEY", der)
}

// provider starts the emulator over HTTPS, requiring a client certificate
// from the test CA.
func provider(t testing.TB, p *pki, dir string) (*emulator.Emulator, *httptest.Server) {
	t.Helper()
	em, err := emulator.New(emulator.Config{Dir: dir, ODS: "A82038", ASID: "918999198993"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(em)
	cert, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: p.pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return em, srv
}

func client(t testing.TB, p *pki, url, caFile string) *gpconnect.Client {
	t.Helper()
	c, err := gpconnect.NewClient(gpconnect.Config{
		URL: url + "/B82617/STU3/1/gpconnect/structured/fhir", CertFile: p.clientCert, KeyFile: p.clientKey, CAFile: caFile,
		ODS: "A82038", FromASID: "200000000359", ToASID: "918999198993", Issuer: "https://gpgate.example/",
		Requester: &gpconnect.Requester{UserID: "u1", SDSUserID: "555000111222", SDSRoleProfileID: "555000222333",
			Family: "Jones", Given: "Claire", Prefix: "Dr", OrgODS: "RXX01", OrgName: "Test Hospital"},
		Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// folder holds one shared record under its test NHS number.
func folder(t testing.TB) (string, fhir.NHSNumber) {
	t.Helper()
	src := filepath.Join("..", "..", "..", "shared", "testdata", "gpconnect-stu3", "9465699926_Sajal_full_20210122.json")
	body, err := os.ReadFile(src)
	if err != nil {
		t.Skip("../shared/testdata/gpconnect-stu3 is absent (the shared test data sits beside the checkout)")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "9465699926_Sajal_full_20210122.json"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	other, _ := os.ReadFile(filepath.Join("..", "..", "..", "shared", "testdata", "gpconnect-stu3", "9465698679_Gainsford_full_20210119.json"))
	_ = os.WriteFile(filepath.Join(dir, "9465698679_Gainsford_full_20210119.json"), other, 0o644)
	return dir, "9465699926"
}

func TestClientAgainstEmulator(t *testing.T) {
	dir, nhs := folder(t)
	p := newPKI(t)
	em, srv := provider(t, p, dir)
	c := client(t, p, srv.URL, p.caFile)
	ctx := context.Background()

	t.Run("normal", func(t *testing.T) {
		em.SetFault(emulator.Fault{})
		rec, err := c.Record(ctx, nhs, fhir.AllAreas)
		if err != nil {
			t.Fatal(err)
		}
		if rec.NHS != nhs || rec.Practice != "A82038" || rec.Version == "" || rec.Resources[0].Type != "Patient" {
			t.Errorf("record %+v", rec)
		}
		types := map[string]int{}
		for _, r := range rec.Resources {
			types[r.Type]++
		}
		for _, typ := range []string{"AllergyIntolerance", "Condition", "MedicationRequest", "Observation", "Encounter", "ServiceRequest", "DiagnosticReport"} {
			if types[typ] == 0 {
				t.Errorf("no %s in the whole record", typ)
			}
		}
	})
	t.Run("only the areas asked for are fetched", func(t *testing.T) {
		em.SetFault(emulator.Fault{})
		rec, err := c.Record(ctx, nhs, fhir.AreaAllergies)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rec.Resources {
			if r.Type != "Patient" && r.Type != "AllergyIntolerance" {
				t.Errorf("%s in an allergies-only answer", r.Type)
			}
		}
	})
	spine := []struct {
		status int
		code   string
		want   fhir.Code
		cause  error
	}{
		{404, "PATIENT_NOT_FOUND", fhir.CodePatientNotFound, nil},
		{403, "NO_PATIENT_CONSENT", fhir.CodeNoPatientConsent, nil},
		{422, "INVALID_PARAMETER", fhir.CodeInternal, gpconnect.ErrRejected},
		{500, "INTERNAL_SERVER_ERROR", fhir.CodeTimeout, gpconnect.ErrUnavailable},
		{503, "", fhir.CodeTimeout, gpconnect.ErrUnavailable},
	}
	for _, s := range spine {
		t.Run("spine error "+s.code, func(t *testing.T) {
			em.SetFault(emulator.Fault{Status: s.status, Code: s.code})
			_, err := c.Record(ctx, nhs, fhir.AllAreas)
			if fe := fhir.AsError(err); fe.Code != s.want {
				t.Errorf("code %v, want %s", err, s.want)
			}
			if s.cause != nil && !errors.Is(err, s.cause) {
				t.Errorf("cause %v, want %v", err, s.cause)
			}
		})
	}
	t.Run("garbage", func(t *testing.T) {
		em.SetFault(emulator.Fault{Garbage: true})
		_, err := c.Record(ctx, nhs, fhir.AllAreas)
		if fhir.AsError(err).Code != fhir.CodeTimeout || !errors.Is(err, gpconnect.ErrMalformed) {
			t.Errorf("garbage: %v", err)
		}
	})
	t.Run("another patient's record is refused", func(t *testing.T) {
		em.SetFault(emulator.Fault{OtherPatient: true})
		rec, err := c.Record(ctx, nhs, fhir.AllAreas)
		if rec != nil || !errors.Is(err, gpconnect.ErrWrongPatient) || fhir.AsError(err).Code != fhir.CodeInternal {
			t.Errorf("wrong patient: %v", err)
		}
	})
	t.Run("slow past the deadline", func(t *testing.T) {
		em.SetFault(emulator.Fault{Latency: 2 * time.Second})
		dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err := c.Record(dctx, nhs, fhir.AllAreas)
		if fhir.AsError(err).Code != fhir.CodeTimeout || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, gpconnect.ErrUnavailable) {
			t.Errorf("slow: %v", err)
		}
	})
	t.Run("dead", func(t *testing.T) {
		em.SetFault(emulator.Fault{Dead: true})
		_, err := c.Record(ctx, nhs, fhir.AllAreas)
		if fhir.AsError(err).Code != fhir.CodeTimeout || !errors.Is(err, gpconnect.ErrUnavailable) {
			t.Errorf("dead: %v", err)
		}
	})
	t.Run("recovers", func(t *testing.T) {
		em.SetFault(emulator.Fault{})
		if _, err := c.Record(ctx, nhs, fhir.AreaProblems); err != nil {
			t.Errorf("after recovery: %v", err)
		}
	})
}

func TestClientTLS(t *testing.T) {
	dir, nhs := folder(t)
	p := newPKI(t)
	_, srv := provider(t, p, dir)
	t.Run("a provider outside the CA bundle is refused", func(t *testing.T) {
		c := client(t, p, srv.URL, p.otherCAFile)
		_, err := c.Record(context.Background(), nhs, fhir.AllAreas)
		if !errors.Is(err, gpconnect.ErrUnavailable) {
			t.Errorf("untrusted provider: %v", err)
		}
	})
	t.Run("without a client certificate the provider refuses", func(t *testing.T) {
		tc := &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12}
		c, err := gpconnect.NewClient(gpconnect.Config{URL: srv.URL, TLS: tc, ODS: "A82038", FromASID: "1", ToASID: "918999198993",
			Requester: &gpconnect.Requester{UserID: "u", OrgODS: "RXX01"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Record(context.Background(), nhs, fhir.AllAreas); !errors.Is(err, gpconnect.ErrUnavailable) {
			t.Errorf("no client certificate: %v", err)
		}
	})
	t.Run("config errors", func(t *testing.T) {
		for name, cfg := range map[string]gpconnect.Config{
			"http":       {URL: "http://x", ODS: "A82038", FromASID: "1", ToASID: "2", CertFile: p.clientCert, KeyFile: p.clientKey, CAFile: p.caFile},
			"no ASIDs":   {URL: srv.URL, ODS: "A82038", CertFile: p.clientCert, KeyFile: p.clientKey, CAFile: p.caFile},
			"no CA":      {URL: srv.URL, ODS: "A82038", FromASID: "1", ToASID: "2", CertFile: p.clientCert, KeyFile: p.clientKey},
			"bad ODS":    {URL: srv.URL, ODS: "a", FromASID: "1", ToASID: "2", CertFile: p.clientCert, KeyFile: p.clientKey, CAFile: p.caFile},
			"CA not PEM": {URL: srv.URL, ODS: "A82038", FromASID: "1", ToASID: "2", CertFile: p.clientCert, KeyFile: p.clientKey, CAFile: p.clientKey},
		} {
			if _, err := gpconnect.NewClient(cfg); err == nil {
				t.Errorf("%s: accepted", name)
			}
		}
	})
}

func TestClientRequester(t *testing.T) {
	dir, nhs := folder(t)
	p := newPKI(t)
	_, srv := provider(t, p, dir)
	c, err := gpconnect.NewClient(gpconnect.Config{URL: srv.URL, CertFile: p.clientCert, KeyFile: p.clientKey, CAFile: p.caFile,
		ODS: "A82038", FromASID: "1", ToASID: "918999198993"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Record(context.Background(), nhs, fhir.AreaAllergies); fhir.AsError(err).Code != fhir.CodeInternal {
		t.Errorf("without a requester: %v", err)
	}
	ctx := fhir.WithPrincipal(context.Background(), &fhir.Principal{ClientID: "demo-ehr", ConsumerODS: "RXX01", Practitioner: "555000111222", Name: "Claire Jones"})
	if _, err := c.Record(ctx, nhs, fhir.AreaAllergies); err != nil {
		t.Errorf("requester from the principal: %v", err)
	}
	ctx = gpconnect.WithRequester(context.Background(), &gpconnect.Requester{UserID: "u9", OrgODS: "RXX02"})
	if _, err := c.Record(ctx, nhs, fhir.AreaAllergies); err != nil {
		t.Errorf("requester from the context: %v", err)
	}
	_ = http.StatusOK
}

package fhir

import (
	"crypto/sha256"
	"strings"
	"sync"
	"testing"
)

func TestPatientIDKeyed(t *testing.T) {
	defer func() { currentPatientIDKey.Store(newPatientIDKey(TestPatientIDKey, false)) }()
	const nhs NHSNumber = "9000000009"
	def := PatientID(nhs)
	unkeyed := sha256.Sum256([]byte("gpgate/patient/v1:" + string(nhs)))
	if def == "p"+idEncoding.EncodeToString(unkeyed[:10]) {
		t.Fatal("PatientID is still the unkeyed hash")
	}
	if PatientIDKeySet() {
		t.Fatal("a key is set before SetPatientIDKey")
	}
	if err := SetPatientIDKey([]byte("short")); err == nil {
		t.Fatal("a 5-byte key was accepted")
	}
	keys := []string{"deployment-one-secret-key-000000", "deployment-two-secret-key-000000"}
	ids := map[string]bool{def: true}
	for _, k := range keys {
		t.Run(k[:14], func(t *testing.T) {
			if err := SetPatientIDKey([]byte(k)); err != nil {
				t.Fatal(err)
			}
			if !PatientIDKeySet() {
				t.Fatal("PatientIDKeySet false after SetPatientIDKey")
			}
			id := PatientID(nhs)
			if ids[id] {
				t.Fatalf("key %q gives an id another key gave: %s", k, id)
			}
			ids[id] = true
			if len(id) != 17 || id[0] != 'p' || strings.Contains(id, string(nhs)) || !ValidID(id) {
				t.Fatalf("id %q does not keep the format p + 16 base32", id)
			}
			// deterministic under one key, also from many goroutines (the pool)
			var wg sync.WaitGroup
			for i := 0; i < 8; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := 0; j < 100; j++ {
						if got := PatientID(nhs); got != id {
							t.Errorf("PatientID changed under one key: %s then %s", id, got)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

func BenchmarkPatientID(b *testing.B) {
	for i := 0; i < b.N; i++ {
		_ = PatientID("9000000009")
	}
}

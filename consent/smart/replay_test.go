package smart

import (
	"testing"
	"time"
)

func TestReplayCacheBound(t *testing.T) {
	var rc *MemoryReplayCache
	f := newFixture(t, func(o *Options) { rc = NewMemoryReplayCache(2, o.Now); o.ReplayCache = rc })
	for i := 0; i < 2; i++ {
		f.token("system/Patient.rs", nil)
	}
	w := f.post(f.srv.TokenHandler(), tokenForm(f.sign(f.claims(), nil), "system/Patient.rs").Encode())
	if a := decodeAnswer(t, w); w.Code != 503 || a.Error != ErrTemporarilyUnavailable || a.AccessToken != "" {
		t.Fatalf("full cache: HTTP %d %+v", w.Code, a)
	}
	// once the remembered assertions have expired, there is room again
	f.clock.Advance(5 * time.Minute)
	f.token("system/Patient.rs", nil)
	if n := rc.Len(); n != 1 {
		t.Fatalf("cache holds %d entries, want 1", n)
	}
}

package smart

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestScopesOfCachesParsesAndStaysBounded(t *testing.T) {
	tests := []struct {
		name   string
		scopes []string
		ok     bool
	}{
		{"v2 patient scopes", []string{"patient/Condition.rs", "patient/Observation.rs?category=laboratory"}, true},
		{"v1 system wildcard", []string{"system/*.read"}, true},
		{"unreadable", []string{"patient/Condition.zz"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, werr := ParseScopes(strings.Join(tc.scopes, " "))
			for i := 0; i < 3; i++ { // a miss, then hits
				got, err := scopesOf(tc.scopes)
				if (err == nil) != tc.ok || (werr == nil) != tc.ok {
					t.Fatalf("call %d: err %v (parse: %v), want ok=%v", i, err, werr, tc.ok)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("call %d: %+v, want %+v", i, got, want)
				}
			}
		})
	}
	t.Run("bounded by bytes", func(t *testing.T) {
		for i := 0; i < 20000; i++ {
			if _, err := scopesOf([]string{fmt.Sprintf("patient/Condition.rs?code=http://snomed.info/sct|%d", i)}); err != nil {
				t.Fatal(err)
			}
			parsedScopes.mu.RLock()
			b := parsedScopes.bytes
			parsedScopes.mu.RUnlock()
			if b > parsedScopes.max {
				t.Fatalf("after %d scope strings the cache holds %d bytes (bound %d)", i+1, b, parsedScopes.max)
			}
		}
	})
}

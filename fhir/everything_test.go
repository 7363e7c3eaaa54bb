package fhir

import (
	"net/url"
	"reflect"
	"testing"
	"time"
)

func TestParseEverything(t *testing.T) {
	for _, tc := range []struct {
		name  string
		query string
		code  Code
		check func(t *testing.T, e *EverythingRequest)
	}{
		{name: "defaults", check: func(t *testing.T, e *EverythingRequest) {
			if e.Query.Count != DefaultCount || e.Types != nil || !e.Since.IsZero() {
				t.Fatalf("%+v", e)
			}
		}},
		{name: "types and paging", query: "_type=Condition,Observation&_count=5000&_offset=10", check: func(t *testing.T, e *EverythingRequest) {
			if !e.Types["Condition"] || !e.Types["Observation"] || len(e.Types) != 2 || e.Query.Count != MaxCount || e.Query.Offset != 10 {
				t.Fatalf("%+v", e)
			}
		}},
		{name: "window", query: "start=2024-01&end=2024-06-30&_since=2025-01-01T00:00:00Z", check: func(t *testing.T, e *EverythingRequest) {
			if !e.Start.Equal(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)) || e.End.Before(time.Date(2024, 6, 30, 23, 0, 0, 0, time.UTC)) || e.Since.IsZero() {
				t.Fatalf("%+v", e)
			}
		}},
		{name: "unknown type", query: "_type=Basic", code: CodeInvalidParameter},
		{name: "bad count", query: "_count=-1", code: CodeInvalidParameter},
		{name: "bad since", query: "_since=yesterday", code: CodeInvalidParameter},
		{name: "end before start", query: "start=2024-02-01&end=2024-01-01", code: CodeInvalidParameter},
		{name: "unknown ignored", query: "nosuch=1", check: func(t *testing.T, e *EverythingRequest) {
			if len(e.Query.Ignored) != 1 || e.Query.Ignored[0] != "nosuch" {
				t.Fatalf("%+v", e.Query)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := url.ParseQuery(tc.query)
			e, err := ParseEverything("pabc", v, false)
			if tc.code != "" {
				if err == nil || AsError(err).Code != tc.code {
					t.Fatalf("got %v, want %s", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, e)
		})
	}
	if _, err := ParseEverything("pabc", url.Values{"nosuch": {"1"}}, true); err == nil || AsError(err).Code != CodeBadRequest {
		t.Fatalf("strict: %v", err)
	}
	if _, err := ParseEverything("not an id!", nil, false); err == nil {
		t.Fatal("an invalid id was accepted")
	}
}

func TestEverythingMatch(t *testing.T) {
	mk := func(raw string) *Resource {
		r, err := NewResource([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	old := mk(`{"resourceType":"Encounter","id":"e1","period":{"start":"2019-05-01T10:00:00Z","end":"2019-05-01T11:00:00Z"},"meta":{"lastUpdated":"2019-05-02T00:00:00Z"}}`)
	recent := mk(`{"resourceType":"Encounter","id":"e2","period":{"start":"2024-03-01T10:00:00Z"},"meta":{"lastUpdated":"2024-03-02T00:00:00Z"}}`)
	undated := mk(`{"resourceType":"Medication","id":"m1"}`)
	v, _ := url.ParseQuery("start=2024-01-01&end=2024-12-31")
	e, _ := ParseEverything("pabc", v, false)
	if e.Match(old) || !e.Match(recent) || !e.Match(undated) {
		t.Fatal("start/end window")
	}
	v, _ = url.ParseQuery("_since=2020-01-01T00:00:00Z")
	e, _ = ParseEverything("pabc", v, false)
	if e.Match(old) || !e.Match(recent) || e.Match(undated) {
		t.Fatal("_since: an undated, unstamped resource has no lastUpdated to compare")
	}
}

func FuzzParseEverything(f *testing.F) {
	for _, s := range []string{"_type=Condition&_count=3", "start=2024&end=2023", "_since=2024-01-01T00:00:00Z", "_offset=99999999999", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		e, err := ParseEverything("pabc", v, false)
		if (err == nil) == (e == nil) {
			t.Fatalf("%v %v", e, err)
		}
		if err == nil && (e.Query.Count < 0 || e.Query.Count > MaxCount || e.Query.Offset < 0) {
			t.Fatalf("paging out of range: %+v", e.Query)
		}
	})
}

func TestEverythingValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		form bool
		want url.Values
		code Code
	}{
		{name: "empty", body: "", want: url.Values{}},
		{name: "parameters", body: `{"resourceType":"Parameters","parameter":[{"name":"_type","valueCode":"Condition"},{"name":"_type","valueString":"Flag"},` +
			`{"name":"_since","valueInstant":"2024-01-01T00:00:00Z"},{"name":"start","valueDate":"2020"},{"name":"end","valueDateTime":"2021-01-01T00:00:00Z"},{"name":"_count","valueInteger":5}]}`,
			want: url.Values{"_type": {"Condition", "Flag"}, "_since": {"2024-01-01T00:00:00Z"}, "start": {"2020"}, "end": {"2021-01-01T00:00:00Z"}, "_count": {"5"}}},
		{name: "unknown goes on", body: `{"resourceType":"Parameters","parameter":[{"name":"nosuch","valueString":"x"}]}`, want: url.Values{"nosuch": {"x"}}},
		{name: "form", body: "_type=Condition&_count=3", form: true, want: url.Values{"_type": {"Condition"}, "_count": {"3"}}},
		{name: "wrong value type", body: `{"resourceType":"Parameters","parameter":[{"name":"_count","valueString":"5"}]}`, code: CodeInvalidParameter},
		{name: "not Parameters", body: `{"resourceType":"Patient"}`, code: CodeInvalidResource},
		{name: "not JSON", body: `<Parameters/>`, code: CodeInvalidResource},
		{name: "trailing", body: `{"resourceType":"Parameters"} {}`, code: CodeInvalidResource},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := EverythingValues([]byte(tc.body), tc.form)
			if tc.code != "" {
				wantCodedError(t, err, tc.code)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if _, err := ParseEverything("p1", got, false); err != nil && tc.name != "unknown goes on" {
				t.Fatalf("ParseEverything: %v", err)
			}
		})
	}
}

func FuzzEverythingValues(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Parameters","parameter":[{"name":"_type","valueCode":"Condition"},{"name":"_count","valueInteger":5}]}`), false)
	f.Add([]byte(`_since=2024-01-01T00:00:00Z&start=2020`), true)
	f.Add([]byte(`{"resourceType":"Parameters","parameter":[{"name":"start","valueDate":"20x"}]}`), false)
	f.Fuzz(func(t *testing.T, body []byte, form bool) {
		v, err := EverythingValues(body, form)
		if err != nil {
			if fe := AsError(err); fe.Code == CodeInternal {
				t.Fatalf("uncoded error %v", err)
			}
			return
		}
		if _, err := ParseEverything("p1", v, false); err != nil {
			if fe := AsError(err); fe.Status() < 400 || fe.Status() > 499 {
				t.Fatalf("status %d for %v", fe.Status(), err)
			}
		}
	})
}

package fhir

import (
	"fmt"
	"sync"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"google.golang.org/protobuf/proto"
)

// The jsonformat marshaller and unmarshaller are safe for concurrent use but
// costly to build, so they are built once.
var codec struct {
	once sync.Once
	m    *jsonformat.Marshaller
	u    *jsonformat.Unmarshaller
	err  error
}

func loadCodec() error {
	codec.once.Do(func() {
		codec.m, codec.err = jsonformat.NewMarshaller(false, "", "", fhirversion.R4)
		if codec.err != nil {
			return
		}
		codec.u, codec.err = jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	})
	return codec.err
}

// Parse reads R4 JSON into its google/fhir proto (a ContainedResource),
// validating it against R4 (cardinality, required fields, value formats,
// reference types). It is the model and the validator, not the hot path.
func Parse(raw []byte) (proto.Message, error) {
	if err := loadCodec(); err != nil {
		return nil, err
	}
	return codec.u.Unmarshal(raw)
}

// Render marshals a google/fhir R4 proto (a resource or a ContainedResource)
// to canonical JSON (compact, keys in jsonformat's sorted order) and indexes it.
// Call it once per resource (at ingest, or when a record is fetched and cached
// by version), never per request. msg is not modified.
func Render(msg proto.Message) (*Resource, error) {
	// jsonformat's marshaller rewrites typed references (patient_id, ...) to
	// their uri form in the message it is given, so it gets a copy.
	return render(proto.Clone(msg))
}

func render(msg proto.Message) (*Resource, error) {
	if err := loadCodec(); err != nil {
		return nil, err
	}
	var raw []byte
	var err error
	if msg.ProtoReflect().Descriptor().Name() == "ContainedResource" {
		raw, err = codec.m.Marshal(msg)
	} else {
		raw, err = codec.m.MarshalResource(msg)
	}
	if err != nil {
		return nil, fmt.Errorf("render resource: %w", err)
	}
	return NewResource(raw)
}

// Canonicalize validates R4 JSON with jsonformat and returns the resource in
// canonical form (jsonformat's compact element order), indexed.
func Canonicalize(raw []byte) (*Resource, error) {
	msg, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("R4 validation: %w", err)
	}
	return render(msg) // msg is ours: no copy needed
}

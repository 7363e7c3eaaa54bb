package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/gpgate/gpgate/adapters"
	"github.com/gpgate/gpgate/adapters/embedded"
	"github.com/gpgate/gpgate/adapters/gp2gp"
)

// practicesConfig is the --practices file: practices served by sources other
// than the embedded store (whose practices are always served).
//
//	{"practices": [
//	  {"ods": "A12345", "name": "Extract Practice", "kind": "gp2gp",
//	   "dir": "/srv/gp2gp/extracts", "pds": "/srv/gp2gp/pds"}
//	]}
type practicesConfig struct {
	Practices []practiceConfig `json:"practices"`
}

type practiceConfig struct {
	ODS      string `json:"ods"`
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Dir      string `json:"dir"`      // gp2gp: folder of extracts (with optional manifest.json)
	PDS      string `json:"pds"`      // gp2gp: folder of PDS-style Patient JSON
	Manifest string `json:"manifest"` // gp2gp: manifest path, default dir/manifest.json
}

func readPracticesConfig(path string) (*practicesConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c practicesConfig
	dec := json.NewDecoder(bytesReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	base := filepath.Dir(path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	for i := range c.Practices {
		p := &c.Practices[i]
		p.Dir, p.PDS, p.Manifest = abs(p.Dir), abs(p.PDS), abs(p.Manifest)
	}
	return &c, nil
}

// registerPractices registers every practice of the embedded store (when
// there is one) and of the config file (when given).
// It returns the ODS codes of practices whose patient lists change on disk
// (gp2gp folders), which serve re-indexes periodically.
func registerPractices(ctx context.Context, reg *adapters.Registry, store *embedded.Store, cfgPath string, log *slog.Logger) (n int, live []string, err error) {
	if store != nil {
		practices, err := store.Practices()
		if err != nil {
			return 0, nil, err
		}
		for _, p := range practices {
			if err := reg.Register(ctx, adapters.Practice{ODS: p.ODS, Name: p.Name, Kind: embedded.Kind, Source: store.Source(p.ODS)}); err != nil {
				return 0, nil, err
			}
			n++
		}
	}
	if cfgPath == "" {
		return n, nil, nil
	}
	cfg, err := readPracticesConfig(cfgPath)
	if err != nil {
		return 0, nil, err
	}
	for _, p := range cfg.Practices {
		var src adapters.Source
		switch p.Kind {
		case "gp2gp":
			s, err := gp2gp.New(gp2gp.Options{Dir: p.Dir, PDSDir: p.PDS, ManifestPath: p.Manifest, Practice: p.ODS, Logger: log})
			if err != nil {
				return 0, nil, fmt.Errorf("practice %s: %w", p.ODS, err)
			}
			src = s
			live = append(live, p.ODS)
		default:
			return 0, nil, fmt.Errorf("practice %s: unknown kind %q (embedded practices come from the store; configurable kinds: gp2gp)", p.ODS, p.Kind)
		}
		if err := reg.Register(ctx, adapters.Practice{ODS: p.ODS, Name: p.Name, Kind: p.Kind, Source: src}); err != nil {
			return 0, nil, err
		}
		n++
	}
	return n, live, nil
}

// reindexLoop picks up new and removed patients of live practices.
func reindexLoop(ctx context.Context, reg *adapters.Registry, live []string, every time.Duration, log *slog.Logger) {
	if len(live) == 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, ods := range live {
				if err := reg.Reindex(ctx, ods); err != nil {
					log.Warn("reindex failed", "practice", ods, "err", err)
				}
			}
		}
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

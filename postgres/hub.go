package postgres

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgxlisten"
)

// Hub fans PostgreSQL notifications out to the caches of this node: each
// store NOTIFYs its channel in the transaction that changes its state, and
// every node's Hub calls the handlers subscribed to that channel once the
// change commits (typically within milliseconds).
//
// Staleness bound: notifications sent while the Hub's connection is down
// are lost by PostgreSQL, so on every (re)connect the Hub calls every
// handler with Reconnected (drop everything). Between losing the
// connection and getting it back (ReconnectDelay, default 1 s, plus the
// connect time) a cache may be stale; caches keep their own TTL as the
// outer bound.
type Hub struct {
	url  string
	log  *slog.Logger
	mu   sync.Mutex
	subs map[string][]func(payload string)
	l    *pgxlisten.Listener
	// ReconnectDelay is the wait before reconnecting (default 1 s).
	ReconnectDelay time.Duration
}

// Reconnected is the payload handlers get when the Hub (re)connects: any
// notification may have been missed, so drop everything cached.
const Reconnected = "\x00reconnected"

// NewHub returns a Hub that listens on its own connection to url.
func NewHub(url string, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.Default()
	}
	return &Hub{url: url, log: log, subs: map[string][]func(string){}, ReconnectDelay: time.Second}
}

// Subscribe calls fn with each notification's payload on channel (and with
// Reconnected). Subscribe before Run. fn runs on the Hub's goroutine:
// keep it short.
func (h *Hub) Subscribe(channel string, fn func(payload string)) {
	h.mu.Lock()
	h.subs[channel] = append(h.subs[channel], fn)
	h.mu.Unlock()
}

type hubHandler struct {
	h       *Hub
	channel string
}

func (hh hubHandler) HandleNotification(ctx context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	hh.h.dispatch(hh.channel, n.Payload)
	return nil
}

func (hh hubHandler) HandleBacklog(ctx context.Context, channel string, _ *pgx.Conn) error {
	hh.h.dispatch(channel, Reconnected)
	return nil
}

func (h *Hub) dispatch(channel, payload string) {
	h.mu.Lock()
	fns := append([]func(string){}, h.subs[channel]...)
	h.mu.Unlock()
	for _, fn := range fns {
		fn(payload)
	}
}

// Run listens until ctx ends, reconnecting after failures.
func (h *Hub) Run(ctx context.Context) error {
	l := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return pgx.Connect(cctx, h.url)
		},
		LogError: func(ctx context.Context, err error) {
			if ctx.Err() == nil {
				h.log.Warn("postgres: notification listener", "err", redact(err))
			}
		},
		ReconnectDelay: h.ReconnectDelay,
	}
	h.mu.Lock()
	for ch := range h.subs {
		l.Handle(ch, hubHandler{h, ch})
	}
	h.mu.Unlock()
	err := l.Listen(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

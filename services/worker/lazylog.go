package worker

import (
	"context"
	"log/slog"
	"slices"
)

// lazyWith is logger.With(attrs...) without the up-front cost: slog's
// handlers format With attributes eagerly, and a worker makes a logger per
// message but almost never writes a line with it. The attributes are added
// to each record actually written instead.
func lazyWith(logger *slog.Logger, attrs ...slog.Attr) *slog.Logger {
	return slog.New(lazyHandler{next: logger.Handler(), attrs: attrs})
}

type lazyHandler struct {
	next  slog.Handler
	attrs []slog.Attr
}

func (h lazyHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h lazyHandler) Handle(ctx context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	return h.next.Handle(ctx, r)
}

func (h lazyHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return lazyHandler{next: h.next, attrs: append(slices.Clip(h.attrs), attrs...)}
}

func (h lazyHandler) WithGroup(name string) slog.Handler {
	// Attributes added so far stay outside the group.
	return h.next.WithAttrs(h.attrs).WithGroup(name)
}

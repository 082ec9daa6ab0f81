package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
)

// Seals listed by GET /audit/seals when no limit is given, and the most
// (400 beyond).
const (
	defaultSealsLimit = 100
	maxSealsLimit     = 1000
)

// sealsBody is the body of GET /audit/seals: next is the seq to pass as
// after= for the seals that follow (the last one's, or after when none).
type sealsBody struct {
	Seals []audit.BundleSeal `json:"seals"`
	Next  int64              `json:"next"`
}

type publicKeysBody struct {
	PublicKeys []audit.PublicKey `json:"public_keys"`
}

func (s *Server) sealStore() (chronicle.SealStore, error) {
	ss, ok := s.opts.Store.(chronicle.SealStore)
	if !ok {
		return nil, notFound("this store keeps no seals")
	}
	return ss, nil
}

func (s *Server) listSeals(w http.ResponseWriter, r *http.Request) error {
	ss, err := s.sealStore()
	if err != nil {
		return err
	}
	var after int64
	if r.URL.Query().Has("after") {
		if after, err = intParam(r, "after", 0); err != nil {
			return err
		}
	}
	limit := int64(defaultSealsLimit)
	if r.URL.Query().Has("limit") {
		if limit, err = intParam(r, "limit", 1); err != nil {
			return err
		}
		if limit > maxSealsLimit { // 400 as for /orders and /events, not silently fewer
			return badField("limit", "at most %d", maxSealsLimit)
		}
	}
	seals, err := ss.Seals(r.Context(), after, int(limit))
	if err != nil {
		return err
	}
	body := sealsBody{Seals: make([]audit.BundleSeal, len(seals)), Next: after}
	for i, seal := range seals {
		body.Seals[i] = audit.BundleSealOf(seal)
		body.Next = seal.Seq
	}
	return writeJSON(w, http.StatusOK, body)
}

func (s *Server) latestSeal(w http.ResponseWriter, r *http.Request) error {
	ss, err := s.sealStore()
	if err != nil {
		return err
	}
	seal, err := ss.LatestSeal(r.Context())
	if errors.Is(err, chronicle.ErrNotFound) {
		return notFound("no seal yet: the log is sealed within about a second of its first event")
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, audit.BundleSealOf(seal))
}

func (s *Server) publicKeys(w http.ResponseWriter, r *http.Request) error {
	ss, err := s.sealStore()
	if err != nil {
		return err
	}
	keys, err := ss.SealKeys(r.Context())
	if err != nil {
		return err
	}
	body := publicKeysBody{PublicKeys: make([]audit.PublicKey, len(keys))}
	for i, k := range keys {
		body.PublicKeys[i] = audit.PublicKey{KeyID: k.KeyID, PublicKey: audit.EncodePublicKey(k.PublicKey)}
	}
	return writeJSON(w, http.StatusOK, body)
}

// sealCollector reports, at scrape time, how far sealing lags behind the
// log.
type sealCollector struct {
	store   chronicle.Store
	seals   chronicle.SealStore
	timeout time.Duration
	log     *slog.Logger

	age, lag, seq *prometheus.Desc
}

func newSealCollector(store chronicle.Store, seals chronicle.SealStore, timeout time.Duration, log *slog.Logger) *sealCollector {
	return &sealCollector{
		store: store, seals: seals, timeout: timeout, log: log,
		age: prometheus.NewDesc("chronicle_seal_age_seconds",
			"Time since the latest seal was made (absent before the first).", nil, nil),
		lag: prometheus.NewDesc("chronicle_seal_lag_seconds",
			"Age of the oldest readable event no seal covers yet; 0 when every one is sealed. Above a few seconds, the sealer is not running.", nil, nil),
		seq: prometheus.NewDesc("chronicle_seal_seq",
			"Seq of the latest seal; 0 before the first.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *sealCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.age
	ch <- c.lag
	ch <- c.seq
}

// Collect implements prometheus.Collector.
func (c *sealCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	latest, err := c.seals.LatestSeal(ctx)
	if err != nil && !errors.Is(err, chronicle.ErrNotFound) {
		c.log.Warn("metrics: latest seal", slog.String("error", err.Error()))
		return
	}
	now := time.Now()
	if err == nil {
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, now.Sub(latest.SealedAt).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(c.seq, prometheus.GaugeValue, float64(latest.Seq))
	next, err := c.store.ReadAll(ctx, latest.LocalEnd(), chronicle.ReadAllOptions{Limit: 1})
	if err != nil {
		c.log.Warn("metrics: unsealed events", slog.String("error", err.Error()))
		return
	}
	lag := 0.0
	if len(next) > 0 {
		lag = max(0, now.Sub(next[0].RecordedAt).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, lag)
}

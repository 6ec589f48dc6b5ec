// Package metrics exports what the pool guard and the sizer see and do, for Prometheus.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dmsize/dmsize/guard"
)

// Metrics is dmsize's registry. It is a guard.Observer.
type Metrics struct {
	reg *prometheus.Registry

	dataUsed, dataSize, dataRatio *prometheus.GaugeVec
	metaUsed, metaSize, metaRatio *prometheus.GaugeVec
	lastEvent, blocked            *prometheus.GaugeVec
	lastExtension                 *prometheus.GaugeVec
	extensions                    *prometheus.CounterVec
	sized, failures, rejections   prometheus.Counter
	repaired                      prometheus.Counter
	overcommit                    *prometheus.GaugeVec

	pool string
}

// New registers dmsize's metrics for pool.
func New(pool string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), pool: pool}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "dmsize", Name: name, Help: help}, append([]string{"pool"}, labels...))
		m.reg.MustRegister(g)
		return g
	}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "dmsize", Name: name, Help: help})
		m.reg.MustRegister(c)
		return c
	}
	m.dataUsed = gauge("pool_data_used_bytes", "Thin pool data space in use.")
	m.dataSize = gauge("pool_data_size_bytes", "Thin pool data space in total.")
	m.dataRatio = gauge("pool_data_used_ratio", "Thin pool data space in use, as a fraction of the total.")
	m.metaUsed = gauge("pool_metadata_used_bytes", "Thin pool metadata space in use.")
	m.metaSize = gauge("pool_metadata_size_bytes", "Thin pool metadata space in total.")
	m.metaRatio = gauge("pool_metadata_used_ratio", "Thin pool metadata space in use, as a fraction of the total.")
	m.lastEvent = gauge("pool_last_event_timestamp_seconds", "When the pool last raised a device-mapper event (Unix time).")
	m.blocked = gauge("pool_extension_blocked", "1 while the pool needs an extension that the guard cannot make (cap, host disk, volume group, GUARD=off).")
	m.lastExtension = gauge("pool_last_extension_seconds", "Time from the read that found a part over the threshold to its new size being live, for the last extension.", "part")
	m.extensions = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "dmsize", Name: "pool_extensions_total", Help: "Pool extensions, by part (data, metadata) and result (ok, failed)."}, []string{"pool", "part", "result"})
	m.reg.MustRegister(m.extensions)
	for _, part := range []string{"data", "metadata"} {
		for _, result := range []string{"ok", "failed"} {
			m.extensions.WithLabelValues(pool, part, result) // exported at 0 from the start
		}
	}
	m.sized = counter("containers_sized_total", "Containers whose root filesystem dmsize grew to their dm.size label.")
	m.failures = counter("resize_failures_total", "Sizing attempts that failed (not counting rejected labels).")
	m.rejections = counter("size_rejections_total", "dm.size labels rejected (malformed, shrink, over the policy or the pool's headroom).")
	m.repaired = counter("containers_repaired_total", "Containers whose interrupted sizing dmsize finished, or whose grown device it re-activated, after a crash or restart.")
	m.overcommit = gauge("pool_overcommit_ratio", "Sum of the virtual sizes of the pool's thin devices over its data size, as of the last growth (above 1: over-committed).")
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ForPool is the same registry observing another pool (the volume pool): the pool gauges and
// the extension counters carry that pool's name; the sizer's metrics are the registry's once.
func (m *Metrics) ForPool(pool string) *Metrics {
	c := *m
	c.pool = pool
	for _, part := range []string{"data", "metadata"} {
		for _, result := range []string{"ok", "failed"} {
			c.extensions.WithLabelValues(pool, part, result)
		}
	}
	return &c
}

func (m *Metrics) Read(u guard.Usage) {
	m.dataUsed.WithLabelValues(m.pool).Set(float64(u.DataUsed))
	m.dataSize.WithLabelValues(m.pool).Set(float64(u.DataTotal))
	m.dataRatio.WithLabelValues(m.pool).Set(u.DataRatio())
	m.metaUsed.WithLabelValues(m.pool).Set(float64(u.MetaUsed))
	m.metaSize.WithLabelValues(m.pool).Set(float64(u.MetaTotal))
	m.metaRatio.WithLabelValues(m.pool).Set(u.MetaRatio())
}

func (m *Metrics) Event(at time.Time) {
	m.lastEvent.WithLabelValues(m.pool).Set(float64(at.UnixNano()) / 1e9)
}

func (m *Metrics) Extended(e guard.Extension) {
	result := "ok"
	if e.Err != nil {
		result = "failed"
	} else {
		m.lastExtension.WithLabelValues(m.pool, e.Part).Set(e.Live.Sub(e.Seen).Seconds())
	}
	m.extensions.WithLabelValues(m.pool, e.Part, result).Inc()
}

func (m *Metrics) Blocked(b bool) {
	v := 0.0
	if b {
		v = 1
	}
	m.blocked.WithLabelValues(m.pool).Set(v)
}

// Sized counts one outcome of the sizer: "grown", "repaired", a rejection, or a failure.
func (m *Metrics) Sized(action string, err error) {
	switch {
	case action == "rejected":
		m.rejections.Inc()
	case err != nil:
		m.failures.Inc()
	case action == "grown":
		m.sized.Inc()
	case action == "repaired":
		m.repaired.Inc()
	}
}

// Overcommit records the pool's over-commit ratio.
func (m *Metrics) Overcommit(ratio float64) { m.overcommit.WithLabelValues(m.pool).Set(ratio) }

// Sizer exports the sizer's bookkeeping: lock entries, queued work, devices held.
func (m *Metrics) Sizer(locks, queued, holds func() float64) {
	for name, f := range map[string]struct {
		help string
		f    func() float64
	}{
		"sizer_locks":  {"Containers with a sizer operation in flight or waiting.", locks},
		"sizer_queue":  {"Containers with sizer work queued.", queued},
		"devices_held": {"Grown devices dmsize holds open so that the engine finds them at the next start.", holds},
	} {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "dmsize", Name: name, Help: f.help}, f.f))
	}
}

// Handler serves the registry in Prometheus' text format. The plugin serves it on its control
// socket (controlapi.PathMetrics), not on a TCP port: the plugin has no network of its own, and
// `dmsize metrics` brings it to the host.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

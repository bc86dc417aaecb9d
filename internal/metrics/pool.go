package metrics

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// PoolCollector exposes a pgxpool's statistics, read at scrape time.
type PoolCollector struct {
	pool  *pgxpool.Pool
	descs poolDescs
}

type poolDescs struct {
	acquired, idle, constructing, total, max            *prometheus.Desc
	acquires, emptyAcquires, canceledAcquires, newConns *prometheus.Desc
	acquireSeconds                                      *prometheus.Desc
}

// NewPoolCollector returns a collector of pool's statistics
// (keyhub_db_pool_*); register it with Metrics.Register.
func NewPoolCollector(pool *pgxpool.Pool) *PoolCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("keyhub_db_pool_"+name, help, nil, nil)
	}
	return &PoolCollector{pool: pool, descs: poolDescs{
		acquired:         d("acquired_conns", "Connections in use."),
		idle:             d("idle_conns", "Idle connections."),
		constructing:     d("constructing_conns", "Connections being opened."),
		total:            d("total_conns", "All connections of the pool."),
		max:              d("max_conns", "The pool's maximum size."),
		acquires:         d("acquires_total", "Connections acquired from the pool."),
		emptyAcquires:    d("empty_acquires_total", "Acquires that had to wait for a connection (the pool was empty)."),
		canceledAcquires: d("canceled_acquires_total", "Acquires canceled by their context."),
		newConns:         d("new_conns_total", "Connections opened."),
		acquireSeconds:   d("acquire_seconds_total", "Time spent acquiring connections."),
	}}
}

// Describe implements prometheus.Collector.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	d := c.descs
	for _, desc := range []*prometheus.Desc{d.acquired, d.idle, d.constructing, d.total, d.max, d.acquires, d.emptyAcquires, d.canceledAcquires, d.newConns, d.acquireSeconds} {
		ch <- desc
	}
}

// Collect implements prometheus.Collector.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	d := c.descs
	gauge := func(desc *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v)
	}
	counter := func(desc *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v)
	}
	gauge(d.acquired, float64(s.AcquiredConns()))
	gauge(d.idle, float64(s.IdleConns()))
	gauge(d.constructing, float64(s.ConstructingConns()))
	gauge(d.total, float64(s.TotalConns()))
	gauge(d.max, float64(s.MaxConns()))
	counter(d.acquires, float64(s.AcquireCount()))
	counter(d.emptyAcquires, float64(s.EmptyAcquireCount()))
	counter(d.canceledAcquires, float64(s.CanceledAcquireCount()))
	counter(d.newConns, float64(s.NewConnsCount()))
	counter(d.acquireSeconds, s.AcquireDuration().Seconds())
}

package coord

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// metrics are the server's Prometheus metrics. Names are etcd's where the
// meaning is the same, so existing etcd dashboards and alerts apply.
type metrics struct {
	reg *prometheus.Registry

	handled     *prometheus.CounterVec
	handling    *prometheus.HistogramVec
	apply       prometheus.Histogram
	leaderSeen  prometheus.Counter
	leaseExpiry prometheus.Counter
	// commitAnnounced counts the barriers the leader committed only to
	// tell followers of a commit index (announceCommits).
	commitAnnounced prometheus.Counter
	// campaignNudges counts the times a follower found its leader silent
	// and unreachable and made raft look for a leader at once
	// (campaignLoop), by what set its deadline.
	campaignNudges *prometheus.CounterVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.handled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "grpc_server_handled_total", Help: "RPCs completed on the server, by method and status code.",
	}, []string{"grpc_service", "grpc_method", "grpc_code"})
	m.handling = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "grpc_server_handling_seconds", Help: "Latency of unary RPCs, by method.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
	}, []string{"grpc_service", "grpc_method"})
	m.apply = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "etcd_server_apply_duration_seconds", Help: "Time to apply a batch of committed raft entries to the store.",
		Buckets: prometheus.ExponentialBuckets(0.00001, 2, 18),
	})
	m.leaderSeen = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "etcd_server_leader_changes_seen_total", Help: "Leader changes seen by this member.",
	})
	m.leaseExpiry = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "etcd_server_lease_expired_total", Help: "Leases revoked because they expired.",
	})
	m.commitAnnounced = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "coord_server_commit_announcements_total", Help: "Barriers the leader committed to send followers the commit index of a write that came alone.",
	})
	m.campaignNudges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coord_server_campaign_nudges_total", Help: "Times this follower found its leader silent past its deadline and not answering, and made raft look for a leader at once; reason is deadline (its own), vote_request (another member asked for a vote, or to campaign first) or after_other (another member campaigned first at its request, and its vote request came).",
	}, []string{"reason"})
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	m.reg.MustRegister(m.handled, m.handling, m.apply, m.leaderSeen, m.leaseExpiry, m.commitAnnounced, m.campaignNudges,
		gauge("etcd_server_has_leader", "1 if a leader is known.", func() float64 {
			addr, _ := s.node.raft.LeaderWithID()
			return b2f(addr != "")
		}),
		gauge("etcd_server_is_leader", "1 if this member leads.", func() float64 { return b2f(s.IsLeader()) }),
		gauge("etcd_mvcc_db_total_size_in_bytes", "Bytes the store accounts for (what the quota compares).", func() float64 { return float64(s.store.Size()) }),
		gauge("etcd_server_quota_backend_bytes", "The space quota.", func() float64 { return float64(s.cfg.QuotaBytes) }),
		gauge("etcd_debugging_mvcc_current_revision", "The store's current revision.", func() float64 { return float64(s.store.Rev()) }),
		gauge("etcd_debugging_mvcc_compact_revision", "The store's compacted revision.", func() float64 { return float64(s.store.CompactRev()) }),
		gauge("etcd_debugging_mvcc_watcher_total", "Watchers on this member.", func() float64 { return float64(s.store.Watchers()) }),
		gauge("etcd_debugging_lease_total", "Leases granted and not revoked.", func() float64 { return float64(len(s.store.Leases())) }),
		gauge("etcd_server_proposals_committed_total", "The raft commit index.", func() float64 { return float64(s.node.raft.CommitIndex()) }),
		gauge("etcd_server_proposals_applied_total", "The raft index applied to the store.", func() float64 { return float64(s.fsm.appliedIndex()) }),
		prometheus.NewGoCollector(),
	)
	return m
}

// unary records the count and latency of unary RPCs.
func (m *metrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	svc, method := splitMethod(info.FullMethod)
	m.handled.WithLabelValues(svc, method, status.Code(err).String()).Inc()
	m.handling.WithLabelValues(svc, method).Observe(time.Since(start).Seconds())
	return resp, err
}

// stream records the count of streaming RPCs when they end.
func (m *metrics) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	err := h(srv, ss)
	svc, method := splitMethod(info.FullMethod)
	m.handled.WithLabelValues(svc, method, status.Code(err).String()).Inc()
	return err
}

func splitMethod(full string) (string, string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndex(full, "/"); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}

// httpHandler serves /metrics and /health (and /debug/pprof/ if enabled). /health answers 200 with etcd's
// {"health":"true"} when this member knows a leader and a linearizable read
// goes through, 503 otherwise.
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	if s.cfg.EnablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		healthy, reason := true, ""
		if addr, _ := s.node.raft.LeaderWithID(); addr == "" {
			healthy, reason = false, "no leader"
		} else if s.node.raft.State() == raft.Leader {
			if err := s.reads.wait(ctx); err != nil {
				healthy, reason = false, err.Error()
			}
		}
		if s.overQuota() {
			healthy, reason = false, "NOSPACE"
		}
		w.Header().Set("Content-Type", "application/json")
		if !healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(map[string]string{"health": boolString(healthy), "reason": reason})
	})
	return mux
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

package controller

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
)

// PhaseDurationMetric is the histogram of how long each phase of a Fleet
// reconcile took, by Fleet and phase: where a slow reconcile spends its
// time, next to Flux's gotk_reconcile_duration_seconds for the whole.
const PhaseDurationMetric = "warren_fleet_phase_duration_seconds"

// phaseSeconds is the process's one phase histogram, registered with the
// controller-runtime metrics registry the first time it is asked for.
var phaseSeconds = sync.OnceValue(func() *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: PhaseDurationMetric,
		Help: "How long each phase of a Fleet reconcile took, in seconds.",
		// From a cached phase of one cluster to a cold start of thousands.
		Buckets: prometheus.ExponentialBuckets(0.005, 4, 10),
	}, []string{"namespace", "name", "phase"})
	crmetrics.Registry.MustRegister(h)
	return h
})

// observePhase records that phase of fleet's reconcile ran since start.
func observePhase(fleet *v1alpha1.Fleet, phase string, start time.Time) {
	phaseSeconds().WithLabelValues(fleet.Namespace, fleet.Name, phase).Observe(time.Since(start).Seconds())
}

package telemetry

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

func (m *Metrics) registerWatchdog(reg prometheus.Registerer) error {
	m.watchdogRebuilds = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "bus_watchdog_rebuilds_total",
		Help: "Times the Service Bus connection and receivers were rebuilt because the broker gave no answer for servicebus.watchdog.",
	})
	if err := reg.Register(m.watchdogRebuilds); err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	return nil
}

// BusWatchdogRebuild counts a connection rebuilt by the bus watchdog.
func (m *Metrics) BusWatchdogRebuild() {
	if m != nil {
		m.watchdogRebuilds.Inc()
	}
}

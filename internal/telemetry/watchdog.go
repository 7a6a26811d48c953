package telemetry

// BusWatchdogRebuild counts a connection rebuilt by the bus watchdog.
func (m *Metrics) BusWatchdogRebuild() {
	if m != nil {
		m.watchdogRebuilds.Inc()
	}
}

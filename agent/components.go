package main

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"wbagent/internal/logging"
	"wbagent/internal/telemetry"
)

// buildComponents assembles the running agent from the config: the
// writeback pipeline, and the HTTP endpoints that report on it. Keys,
// secrets and local files are loaded here, before anything reports
// running, so a broken installation fails at once with a clear error.
func buildComponents(ctx context.Context, p *program) ([]component, error) {
	reg := telemetry.NewRegistry()
	metrics, err := telemetry.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	pl, err := newPipeline(ctx, p.cfg, p.log.Logger, pipelineEnv{getenv: p.getenv, metrics: metrics})
	if err != nil {
		return nil, err
	}
	comps := []component{}
	if p.cfg.HTTP.Listen != "" {
		srv := telemetry.NewServer(telemetry.ServerOptions{
			Addr: p.cfg.HTTP.Listen, Gatherer: reg, CheckTimeout: 5 * time.Second,
			Logger:       p.log.With(zap.String(logging.FieldComponent, "http")),
			ReadyDetails: p.cfg.HTTP.ReadyDetails,
		})
		for name, check := range pl.readyChecks() {
			srv.AddCheck(name, check)
		}
		comps = append(comps, &httpComponent{srv: srv, log: p.log.Logger})
	}
	// The HTTP endpoints start first and stop last, so /healthz and
	// /readyz answer for the whole life of the pipeline.
	return append(comps, pl), nil
}

// httpComponent serves /healthz, /readyz and /metrics.
type httpComponent struct {
	srv *telemetry.Server
	log *zap.Logger
}

func (h *httpComponent) name() string { return "http" }

func (h *httpComponent) start(context.Context) error {
	if err := h.srv.Start(); err != nil {
		return fmt.Errorf("http.listen: %w", err)
	}
	h.log.Info("serving /healthz /readyz /metrics", zap.String(logging.FieldAddr, h.srv.Addr()))
	return nil
}

func (h *httpComponent) stop(ctx context.Context) error { return h.srv.Shutdown(ctx) }

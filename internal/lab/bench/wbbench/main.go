package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"wbagent/internal/lab/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == bench.CapacityAgentCommand {
		if err := bench.RunCapacityAgent(ctx, os.Args[2:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "wbbench capacity agent:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "wbbench:", err)
		os.Exit(1)
	}
}

func steps(list string) []string {
	var out []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func run(ctx context.Context) error {
	out := os.Getenv("BENCH_OUT")
	if out == "" {
		out = filepath.Join("bin", "bench.json")
	}
	flag.StringVar(&out, "out", out, "write the JSON report here (default $BENCH_OUT, else bin/bench.json)")
	quick := flag.Bool("quick", false, "short runs: a smoke test of the benchmark, not figures to quote")
	profiles := flag.String("profiles", "", "write a CPU profile of every capacity agent into this folder")
	dir := flag.String("dir", "", "keep the working folder (configs, agent logs, audit files) here instead of a temporary one")
	only := flag.String("only", "", "run only these steps, comma-separated: e2e, capacity, growth, drain, transport")
	flag.Parse()
	if *profiles != "" {
		if err := os.MkdirAll(*profiles, 0o755); err != nil {
			return err
		}
	}
	rep, err := bench.Run(ctx, bench.Options{Dir: *dir, Log: os.Stderr, Quick: *quick, ProfileDir: *profiles, Only: steps(*only)})
	if err != nil {
		return err
	}
	rep.WriteMarkdown(os.Stdout)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := rep.WriteJSON(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	fmt.Printf("\nJSON: %s\n", out)
	return nil
}

package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"wbagent/internal/lab/demo"
)

func main() {
	var o demo.Options
	flag.StringVar(&o.Agent, "agent", "", "wbagent binary to run (default: build it from this checkout)")
	flag.BoolVar(&o.Keep, "keep", false, "keep the demo's folder (config, keys, logs, audit trail) for a look afterwards")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	err := o.Run(ctx, os.Stdout)
	cancel()
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "\nwbdemo: %v\n", err)
		os.Exit(1)
	}
}

package main

import (
	"context"
	"fmt"

	"wbagent/internal/version"
)

func init() {
	register(&command{
		name:    "version",
		summary: "print the version, commit and build date",
		run: func(_ context.Context, env *cmdEnv, args []string) error {
			fs := newFlags(env, "version", "version")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			fmt.Fprintln(env.stdout, version.String())
			return nil
		},
	})
}

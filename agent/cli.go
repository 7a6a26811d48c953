package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Exit codes. Each failure class has its own, so scripts and service
// managers can tell a typo in the config from a dead directory.
const (
	exitOK            = 0
	exitError         = 1  // the command ran and failed
	exitUsage         = 2  // bad flags or arguments
	exitNegative      = 3  // a negative answer: service stopped, request failed
	exitConfigMissing = 66 // EX_NOINPUT: the config file does not exist
	exitConfigAccess  = 77 // EX_NOPERM: the config file cannot be read
	exitConfigInvalid = 78 // EX_CONFIG: the config file is invalid
)

// exitErr carries an exit code with an error; a nil err means "exit quietly".
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitErr) Unwrap() error { return e.err }

// withCode attaches an exit code to err.
func withCode(code int, err error) error { return &exitErr{code: code, err: err} }

// exitCode prints err (if it has a message) and returns the process exit code.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ee *exitErr
	if errors.As(err, &ee) {
		if ee.err != nil && !errors.Is(ee.err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "wbagent: %v\n", ee.err)
		}
		return ee.code
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintf(stderr, "wbagent: %v\n", err)
	return exitError
}

// cmdEnv is what a subcommand may touch: its streams and the environment.
// Tests fill it with buffers and a fake environment.
type cmdEnv struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// command is one `wbagent <name>` subcommand. Each lives in its own file
// (cmd_<name>.go) and registers itself in init, so commands can be added
// without touching a central list.
type command struct {
	name    string
	summary string // one line for `wbagent help`
	// run parses args with its own FlagSet (use newFlags) and does the work.
	run func(ctx context.Context, env *cmdEnv, args []string) error
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("wbagent: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

// newFlags makes a FlagSet whose -h output names the command and explains it.
func newFlags(env *cmdEnv, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "usage: wbagent %s\n\n", usage)
		if c := commands[strings.Fields(name)[0]]; c != nil {
			fmt.Fprintf(env.stderr, "%s\n\n", c.summary)
		}
		printFlags(env.stderr, fs)
	}
	return fs
}

// printFlags lists fs's flags as they are written on a command line,
// --name VALUE (the flag package prints -name), each with its usage and
// any default that is not the zero value.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	listed := false
	fs.VisitAll(func(f *flag.Flag) {
		if !listed {
			fmt.Fprintln(w, "flags:")
			listed = true
		}
		kind, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if kind != "" {
			line += " " + strings.ToUpper(kind)
		}
		switch f.DefValue {
		case "", "false", "0", "0s", "[]":
		default:
			if kind == "string" {
				usage += fmt.Sprintf(" (default %q)", f.DefValue)
			} else {
				usage += fmt.Sprintf(" (default %s)", f.DefValue)
			}
		}
		fmt.Fprintf(w, "%s\n      %s\n", line, usage)
	})
}

// parseFlags parses args and turns -h and flag errors into usage exits.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return withCode(exitOK, nil)
		}
		return withCode(exitUsage, nil) // the flag package already printed why
	}
	if fs.NArg() > 0 {
		return withCode(exitUsage, fmt.Errorf("%s: unexpected argument %q (flags go before arguments; see wbagent %s -h)", fs.Name(), fs.Arg(0), fs.Name()))
	}
	return nil
}

// run is the whole program behind main, callable from tests.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	env := &cmdEnv{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	return runEnv(ctx, env, args)
}

func runEnv(ctx context.Context, env *cmdEnv, args []string) error {
	if len(args) == 0 {
		printHelp(env.stderr)
		return withCode(exitUsage, nil)
	}
	name := args[0]
	switch name {
	case "--version", "-version", "-v":
		return commands["version"].run(ctx, env, args[1:])
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c := commands[args[1]]; c != nil {
				return c.run(ctx, env, []string{"-h"})
			}
			return withCode(exitUsage, fmt.Errorf("unknown command %q; run 'wbagent help' for the list", args[1]))
		}
		printHelp(env.stdout)
		return nil
	}
	c := commands[name]
	if c == nil {
		return withCode(exitUsage, fmt.Errorf("unknown command %q; run 'wbagent help' for the list", name))
	}
	return c.run(ctx, env, args[1:])
}

func printHelp(w io.Writer) {
	fmt.Fprint(w, "wbagent applies signed, encrypted password writebacks from Azure Service Bus to Active Directory.\n\nusage: wbagent <command> [flags]\n\ncommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, "\nRun 'wbagent <command> --help' for a command's flags; 'wbagent --version' prints the version.\n")
}

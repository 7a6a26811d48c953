package main

import (
	"context"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"wbagent/internal/config"
	"wbagent/internal/directory"
)

func init() {
	register(&command{
		name:    "tls",
		summary: "tls show URL: print the certificate chain a DC presents, its pins, and whether it verifies (never binds)",
		run:     runTLS,
	})
}

const tlsUsage = "tls show [--config FILE] [--starttls] [--server-name NAME] [--ca-file FILE] [--save-ca FILE] ldaps://dc1.corp.example.test:636"

func runTLS(ctx context.Context, env *cmdEnv, args []string) error {
	if len(args) == 0 || args[0] != "show" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fmt.Fprintf(env.stderr, "usage: wbagent %s\n", tlsUsage)
			return withCode(exitOK, nil)
		}
		return withCode(exitUsage, fmt.Errorf("usage: wbagent %s", tlsUsage))
	}
	fs := newFlags(env, "tls show", tlsUsage)
	cfgPath := fs.String("config", "", "take tls settings from this config (default: "+defaultConfigPath()+" when it exists)")
	startTLS := fs.Bool("starttls", false, "the URL is ldap://host:389 and TLS starts with StartTLS")
	serverName := fs.String("server-name", "", "the name the certificate must carry (as tls.serverName)")
	caFile := fs.String("ca-file", "", "verify against this CA file (as tls.caFile) instead of the config's")
	saveCA := fs.String("save-ca", "", "write the issuing CA the DC presents (or its self-signed certificate) as PEM to this new file")
	timeout := fs.Duration("timeout", 10*time.Second, "connect and handshake timeout")
	// Flags may come before or after the URL.
	var target string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return withCode(exitOK, nil)
			}
			return withCode(exitUsage, nil)
		}
		if fs.NArg() == 0 {
			break
		}
		if target != "" {
			return withCode(exitUsage, fmt.Errorf("tls show: one URL only, got %q and %q", target, fs.Arg(0)))
		}
		target, rest = fs.Arg(0), fs.Args()[1:]
	}
	if target == "" {
		return withCode(exitUsage, fmt.Errorf("tls show: give the DC's URL, e.g. wbagent %s", tlsUsage))
	}

	ts, source, err := tlsSettings(*cfgPath, target)
	if err != nil {
		return err
	}
	// An ldap:// URL can only mean StartTLS here: tls show never speaks
	// LDAP in clear beyond the StartTLS request.
	ts.StartTLS = *startTLS || strings.HasPrefix(strings.ToLower(target), "ldap://")
	if *serverName != "" {
		ts.ServerName = *serverName
	}
	if *caFile != "" {
		ts.CAFile, ts.PinSHA256, source = *caFile, nil, "--ca-file"
	}
	in, err := directory.Inspect(ctx, target, ts, *timeout)
	if err != nil {
		return fmt.Errorf("tls show %s: %w", target, err)
	}
	out := env.stdout
	now := time.Now()
	fmt.Fprintf(out, "%s (%s) presented %d certificate(s), leaf first:\n", target, in.Version, len(in.Chain))
	for i, c := range in.Chain {
		fmt.Fprintf(out, "\n[%d]\n%s", i, directory.Describe(c, now, "  "))
	}
	fmt.Fprintf(out, "\nverification with %s (%s), expecting %s:\n", source, in.TrustedBy, in.Name)
	verified := in.Verify == nil
	var te *directory.TLSError
	switch {
	case verified && len(in.Legacy) > 0:
		fmt.Fprintf(out, "  OK, with a legacy certificate: %s\n", strings.Join(in.Legacy, "; "))
	case verified:
		fmt.Fprintln(out, "  OK")
	case errors.As(in.Verify, &te):
		fmt.Fprintf(out, "  FAILS: %s\n  fix: %s\n", te.Msg, te.Fix)
	default:
		fmt.Fprintf(out, "  FAILS: %v\n", in.Verify)
	}
	fmt.Fprintf(out, "\nto trust this DC by its key instead of a CA file (after checking the pin out of band):\n  tls: {pinSHA256: [%q]}\n", directory.PinSHA256(in.Chain[0]))
	if len(in.Chain) > 1 {
		top := in.Chain[len(in.Chain)-1]
		fmt.Fprintf(out, "  or, surviving renewals of the DC's certificate, the key of %s:\n  tls: {pinSHA256: [%q]}\n", top.Subject.String(), directory.PinSHA256(top))
	}
	if *saveCA == "" {
		if !verified {
			return withCode(exitNegative, nil)
		}
		return nil
	}
	ca, err := in.IssuingCA()
	if err != nil {
		return fmt.Errorf("tls show --save-ca: %w", err)
	}
	f, err := os.OpenFile(*saveCA, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("tls show --save-ca: %w (it never overwrites: remove the file or choose another)", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}); err != nil {
		f.Close()
		return fmt.Errorf("tls show --save-ca: write %s: %w", *saveCA, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("tls show --save-ca: write %s: %w", *saveCA, err)
	}
	fmt.Fprintf(out, "\nwrote %s: %s (pin %s); check it out of band before setting tls.caFile: %s\n", *saveCA, ca.Subject.String(), directory.PinSHA256(ca), *saveCA)
	ts.CAFile, ts.PinSHA256 = *saveCA, nil
	again, err := directory.Inspect(ctx, target, ts, *timeout)
	switch {
	case err != nil:
		return fmt.Errorf("tls show: verify with %s: %w", *saveCA, err)
	case again.Verify != nil:
		fmt.Fprintf(out, "with tls.caFile: %s the DC still FAILS: %v\n", *saveCA, again.Verify)
		return withCode(exitNegative, nil)
	}
	fmt.Fprintf(out, "with tls.caFile: %s the DC verifies\n", *saveCA)
	return nil
}

// tlsSettings takes the tls section of the configured domain that lists
// target (else the domain the host name belongs to, else the only domain).
// Without a config it verifies against the system roots.
func tlsSettings(path, target string) (directory.TLS, string, error) {
	explicit := path != ""
	if !explicit {
		path = defaultConfigPath()
		if _, err := os.Stat(path); err != nil {
			return directory.TLS{}, "no config", nil
		}
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return directory.TLS{}, "", err
	}
	d := domainFor(cfg, target)
	if d == nil {
		return directory.TLS{}, path + " (no domain lists " + target + ")", nil
	}
	t := d.TLS
	return directory.TLS{CAFile: t.CAFile, ServerName: t.ServerName, StartTLS: t.StartTLS, PinSHA256: t.PinSHA256},
		path + " domain " + d.Name, nil
}

func domainFor(cfg *config.Config, target string) *config.Domain {
	tu, err := url.Parse(target)
	if err != nil {
		return nil
	}
	host := strings.ToLower(tu.Hostname())
	domains := cfg.Directory.Domains
	for i := range domains {
		for _, s := range append(append([]string{}, domains[i].Servers...), domains[i].GlobalCatalog...) {
			if su, err := url.Parse(s); err == nil && strings.EqualFold(su.Hostname(), host) && portOf(su) == portOf(tu) {
				return &domains[i]
			}
		}
	}
	if net.ParseIP(host) == nil {
		for i := range domains {
			if strings.HasSuffix(host, "."+strings.ToLower(domains[i].Name)) {
				return &domains[i]
			}
		}
	}
	if len(domains) == 1 {
		return &domains[0]
	}
	return nil
}

// portOf is the URL's port, or the scheme's default.
func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "ldaps") {
		return "636"
	}
	return "389"
}

package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"

	"wbagent/internal/devbus"
	"wbagent/internal/secret"
)

const entraClientHelp = "ID=secret:FILE|cert:FILE[,listen][,send]"

// parseEntraClient reads one --entra-client value. The secret comes from
// a file so that it stays off the command line; cert:FILE is the client's
// certificate (PEM), whose public key verifies its client assertions.
func parseEntraClient(spec string) (devbus.EntraClient, error) {
	parts := strings.Split(spec, ",")
	id, cred, ok := strings.Cut(parts[0], "=")
	c := devbus.EntraClient{ID: strings.TrimSpace(id)}
	if !ok || c.ID == "" {
		return c, fmt.Errorf("entra client %q: write %s", spec, entraClientHelp)
	}
	kind, file, ok := strings.Cut(cred, ":")
	if !ok || file == "" {
		return c, fmt.Errorf("entra client %s: the credential must be secret:FILE or cert:FILE", c.ID)
	}
	switch kind {
	case "secret":
		b, err := os.ReadFile(file)
		if err != nil {
			return c, fmt.Errorf("entra client %s: read the secret file: %w", c.ID, err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		clear(b)
		if v == "" {
			return c, fmt.Errorf("entra client %s: the secret file %s is empty", c.ID, file)
		}
		c.Secret = secret.FromString(v)
	case "cert":
		b, err := os.ReadFile(file)
		if err != nil {
			return c, fmt.Errorf("entra client %s: read the certificate file: %w", c.ID, err)
		}
		for rest := b; ; {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				return c, fmt.Errorf("entra client %s: %s holds no PEM CERTIFICATE block", c.ID, file)
			}
			if blk.Type == "CERTIFICATE" {
				if c.Certificate, err = x509.ParseCertificate(blk.Bytes); err != nil {
					return c, fmt.Errorf("entra client %s: parse the certificate in %s: %w", c.ID, file, err)
				}
				break
			}
		}
	default:
		return c, fmt.Errorf("entra client %s: unknown credential kind %q; use secret:FILE or cert:FILE", c.ID, kind)
	}
	for _, p := range parts[1:] {
		switch strings.TrimSpace(p) {
		case "listen":
			c.Listen = true
		case "send":
			c.Send = true
		default:
			return c, fmt.Errorf("entra client %s: unknown right %q; rights are listen and send", c.ID, p)
		}
	}
	return c, nil
}

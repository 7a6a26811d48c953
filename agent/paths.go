package main

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"

	"wbagent/internal/config"
)

// defaultConfigPath is where the packages install the config.
func defaultConfigPath() string {
	if runtime.GOOS == "windows" {
		pd := os.Getenv("ProgramData")
		if pd == "" {
			pd = `C:\ProgramData`
		}
		return filepath.Join(pd, "wbagent", "wbagent.yaml")
	}
	return "/etc/wbagent/wbagent.yaml"
}

// loadConfig loads the config and gives each failure class its exit code.
func loadConfig(path string) (*config.Config, error) {
	c, err := config.Load(path)
	if err == nil {
		return c, nil
	}
	var ae *config.AccessError
	switch {
	case errors.Is(err, config.ErrNotFound):
		return nil, withCode(exitConfigMissing, err)
	case errors.As(err, &ae):
		return nil, withCode(exitConfigAccess, err)
	default:
		return nil, withCode(exitConfigInvalid, err)
	}
}

package logging

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/natefinch/lumberjack.v2"
)

// Options says where and how to log; it mirrors the config's `log` section.
type Options struct {
	Level  string // debug, info, warn, error; anything else falls back to info with a warning
	Format string // json (default) or console
	// File, when Path is set, also writes to a file rotated by size.
	File FileOptions
}

// FileOptions describes a rotated log file.
type FileOptions struct {
	Path       string
	MaxSizeMB  int
	MaxBackups int
	MaxAgeDays int
}

// Logger is a zap logger plus the handle that reopens its file, for SIGHUP
// after an external logrotate moved the file away.
type Logger struct {
	*zap.Logger
	file *lumberjack.Logger
}

// Reopen closes the log file; the next line opens it again at its path.
// That is what an external log rotator expects after it moved the file.
func (l *Logger) Reopen() error {
	if l == nil || l.file == nil {
		return nil
	}
	return l.file.Close()
}

// Close flushes and closes the file.
func (l *Logger) Close() error {
	if l == nil {
		return nil
	}
	_ = l.Sync()
	if l.file != nil {
		return l.file.Close()
	}
	return nil
}

// New builds the logger. stderr is where console/JSON lines go besides the
// file (os.Stderr in production, a buffer in tests).
func New(opts Options, stderr io.Writer) (*Logger, error) {
	level, badLevel := parseLevel(opts.Level)
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "time"
	encCfg.MessageKey = "msg"
	encCfg.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	encCfg.EncodeDuration = zapcore.StringDurationEncoder
	var enc zapcore.Encoder
	switch strings.ToLower(opts.Format) {
	case "", "json":
		enc = zapcore.NewJSONEncoder(encCfg)
	case "console":
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	default:
		return nil, fmt.Errorf("log.format %q is not known: use json or console", opts.Format)
	}
	if stderr == nil {
		stderr = os.Stderr
	}
	cores := []zapcore.Core{zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(stderr)), level)}
	out := &Logger{}
	if opts.File.Path != "" {
		if err := os.MkdirAll(filepath.Dir(opts.File.Path), 0o750); err != nil {
			return nil, fmt.Errorf("create log folder for %s: %w", opts.File.Path, err)
		}
		out.file = &lumberjack.Logger{
			Filename:   opts.File.Path,
			MaxSize:    max(opts.File.MaxSizeMB, 1),
			MaxBackups: opts.File.MaxBackups,
			MaxAge:     opts.File.MaxAgeDays,
		}
		fileEnc := zapcore.NewJSONEncoder(encCfg) // files are for machines: always JSON
		if strings.EqualFold(opts.Format, "console") {
			fileEnc = enc.Clone()
		}
		cores = append(cores, zapcore.NewCore(fileEnc, zapcore.AddSync(out.file), level))
	}
	out.Logger = zap.New(zapcore.NewTee(cores...), zap.ErrorOutput(zapcore.AddSync(stderr)))
	if badLevel {
		out.Warn("log.level is not known; logging at info", zap.String("level", opts.Level))
	}
	return out, nil
}

// parseLevel returns the level and whether the given text was not understood.
func parseLevel(s string) (zap.AtomicLevel, bool) {
	if s == "" {
		return zap.NewAtomicLevelAt(zap.InfoLevel), false
	}
	l, err := zap.ParseAtomicLevel(strings.ToLower(s))
	if err != nil {
		return zap.NewAtomicLevelAt(zap.InfoLevel), true
	}
	return l, false
}

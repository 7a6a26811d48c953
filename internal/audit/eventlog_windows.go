//go:build windows

package audit

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/windows/registry"
	"golang.org/x/sys/windows/svc/eventlog"
)

// EventSource is the Event Log source the agent writes under.
const EventSource = "wbagent"

// netMessageFile holds a message for every id from 0 to 65535 that prints
// the entry's text as is: the .NET Framework's own event source message
// file, present on every supported Windows Server. EventCreate.exe, the
// fallback, only defines ids 1–1000, so entries with the ids above would
// show "the description cannot be found" before their text.
const netMessageFile = `%SystemRoot%\Microsoft.NET\Framework64\v4.0.30319\EventLogMessages.dll`

// eventSourceKey is where the Application log's sources are registered.
const eventSourceKey = `SYSTEM\CurrentControlSet\Services\EventLog\Application\`

// EventSourceExists reports whether source is registered in the
// Application log.
func EventSourceExists(source string) (bool, error) {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, eventSourceKey+source, registry.QUERY_VALUE)
	if errors.Is(err, registry.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read Event Log source %s: %w", source, err)
	}
	k.Close()
	return true, nil
}

// InstallEventSource registers source in the Application log, or repairs
// its registration. The service installer calls it; it needs administrator
// rights. It creates every missing key of the path: an uninstaller may have
// removed the Application key itself when it emptied it (Wine's msiexec
// does), and eventlog.Install then fails with "File not found". The
// message file is written as REG_EXPAND_SZ so %SystemRoot% expands.
func InstallEventSource(source string) error {
	msgFile := netMessageFile
	if _, err := os.Stat(expandWindowsEnv(netMessageFile)); err != nil {
		msgFile = `%SystemRoot%\System32\EventCreate.exe`
	}
	k, _, err := registry.CreateKey(registry.LOCAL_MACHINE, eventSourceKey+source, registry.SET_VALUE)
	if err != nil {
		return fmt.Errorf("register Event Log source %s: %w (run as an administrator)", source, err)
	}
	defer k.Close()
	if err := k.SetExpandStringValue("EventMessageFile", msgFile); err != nil {
		return fmt.Errorf("register Event Log source %s: %w", source, err)
	}
	if err := k.SetDWordValue("TypesSupported", eventlog.Error|eventlog.Warning|eventlog.Info); err != nil {
		return fmt.Errorf("register Event Log source %s: %w", source, err)
	}
	return nil
}

// expandWindowsEnv expands %NAME% references as Windows does.
func expandWindowsEnv(s string) string {
	if v, err := registry.ExpandString(s); err == nil {
		return v
	}
	return s
}

// RemoveEventSource unregisters source, for the uninstaller; a source that
// is not registered is not an error.
func RemoveEventSource(source string) error {
	err := registry.DeleteKey(registry.LOCAL_MACHINE, eventSourceKey+source)
	if err != nil && !errors.Is(err, registry.ErrNotExist) {
		return fmt.Errorf("remove Event Log source %s: %w", source, err)
	}
	return nil
}

// EventLog is the Sink writing each audit record to the Windows Event Log,
// with the id and level of EventID and EventLevel.
type EventLog struct {
	log *eventlog.Log
}

// OpenEventLog opens the Event Log under source (registered by
// InstallEventSource).
func OpenEventLog(source string) (*EventLog, error) {
	l, err := eventlog.Open(source)
	if err != nil {
		return nil, fmt.Errorf("open Event Log source %s: %w (was the service installed with `wbagent service install`?)", source, err)
	}
	return &EventLog{log: l}, nil
}

// Write reports rec as one Event Log entry.
func (e *EventLog) Write(rec Record) error {
	id, msg := EventID(rec.Op, rec.Event, rec.Code), EventMessage(rec)
	var err error
	switch EventLevel(rec.Code) {
	case Information:
		err = e.log.Info(id, msg)
	case Warning:
		err = e.log.Warning(id, msg)
	default:
		err = e.log.Error(id, msg)
	}
	if err != nil {
		return fmt.Errorf("write Event Log entry %d: %w", id, err)
	}
	return nil
}

// Close releases the Event Log handle.
func (e *EventLog) Close() error { return e.log.Close() }

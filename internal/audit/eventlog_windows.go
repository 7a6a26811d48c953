//go:build windows

package audit

import (
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

// InstallEventSource registers source in the Application log. The service
// installer calls it; it needs administrator rights, and does nothing when
// the source is registered already.
func InstallEventSource(source string) error {
	const levels = eventlog.Error | eventlog.Warning | eventlog.Info
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, `SYSTEM\CurrentControlSet\Services\EventLog\Application\`+source, registry.QUERY_VALUE)
	if err == nil {
		k.Close()
		return nil
	}
	if _, statErr := os.Stat(os.ExpandEnv(netMessageFile)); statErr == nil {
		err = eventlog.Install(source, netMessageFile, true, levels)
	} else {
		err = eventlog.InstallAsEventCreate(source, levels)
	}
	if err != nil {
		return fmt.Errorf("register Event Log source %s: %w (run as an administrator)", source, err)
	}
	return nil
}

// RemoveEventSource unregisters source, for the uninstaller.
func RemoveEventSource(source string) error {
	if err := eventlog.Remove(source); err != nil {
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

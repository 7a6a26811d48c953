//go:build windows

package main

import (
	"errors"
	"fmt"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"

	"wbagent/internal/audit"
)

// winSCM is scm on the real service control manager.
type winSCM struct{}

func newSCM() scm { return winSCM{} }

// with connects to the manager and opens name with the access asked for;
// a missing service is errWinNotInstalled.
func (winSCM) with(name string, access uint32, f func(h windows.Handle) error) error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connect to the service manager: %w (run as an administrator)", err)
	}
	defer m.Disconnect()
	p, err := syscall.UTF16PtrFromString(name)
	if err != nil {
		return fmt.Errorf("service name %q: %w", name, err)
	}
	h, err := windows.OpenService(m.Handle, p, access)
	if errors.Is(err, windows.ERROR_SERVICE_DOES_NOT_EXIST) {
		return errWinNotInstalled
	}
	if err != nil {
		return fmt.Errorf("open service %s: %w", name, err)
	}
	defer windows.CloseServiceHandle(h)
	return f(h)
}

func (s winSCM) State(name string) (winState, error) {
	m, err := windows.OpenSCManager(nil, nil, windows.SC_MANAGER_CONNECT)
	if err != nil {
		return 0, fmt.Errorf("connect to the service manager: %w", err)
	}
	defer windows.CloseServiceHandle(m)
	p, err := syscall.UTF16PtrFromString(name)
	if err != nil {
		return 0, fmt.Errorf("service name %q: %w", name, err)
	}
	h, err := windows.OpenService(m, p, windows.SERVICE_QUERY_STATUS)
	if errors.Is(err, windows.ERROR_SERVICE_DOES_NOT_EXIST) {
		return winNotInstalled, nil
	}
	if err != nil {
		return 0, fmt.Errorf("open service %s: %w", name, err)
	}
	defer windows.CloseServiceHandle(h)
	var st windows.SERVICE_STATUS
	if err := windows.QueryServiceStatus(h, &st); err != nil {
		return 0, fmt.Errorf("query service %s: %w", name, err)
	}
	return winStateOf(svc.State(st.CurrentState)), nil
}

func winStateOf(s svc.State) winState {
	switch s {
	case svc.Stopped:
		return winStopped
	case svc.StartPending:
		return winStartPending
	case svc.Running:
		return winRunning
	case svc.StopPending:
		return winStopPending
	}
	return winOther
}

func (winSCM) Create(s winServiceSpec) error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connect to the service manager: %w (run as an administrator)", err)
	}
	defer m.Disconnect()
	h, err := m.CreateService(s.Name, s.Exe, mgr.Config{
		DisplayName:      s.DisplayName,
		StartType:        mgr.StartAutomatic,
		ErrorControl:     mgr.ErrorNormal,
		ServiceStartName: s.Account,
	}, s.Args...)
	if err != nil {
		return fmt.Errorf("create service %s: %w", s.Name, err)
	}
	defer h.Close()
	// The description is cosmetic: a manager that refuses it keeps the service.
	_ = setDescription(h.Handle, s.Description)
	return nil
}

func (w winSCM) Update(s winServiceSpec) error {
	return w.with(s.Name, windows.SERVICE_CHANGE_CONFIG, func(h windows.Handle) error {
		cmd := syscall.EscapeArg(s.Exe)
		for _, a := range s.Args {
			cmd += " " + syscall.EscapeArg(a)
		}
		account := s.Account
		if account == "" {
			account = "LocalSystem"
		}
		ptr := func(v string) *uint16 { p, _ := syscall.UTF16PtrFromString(v); return p }
		// An empty password for an account that has none: LocalSystem,
		// virtual accounts and gMSAs.
		if err := windows.ChangeServiceConfig(h, windows.SERVICE_WIN32_OWN_PROCESS, windows.SERVICE_AUTO_START, windows.SERVICE_ERROR_NORMAL,
			ptr(cmd), nil, nil, nil, ptr(account), ptr(""), ptr(s.DisplayName)); err != nil {
			return fmt.Errorf("update service %s: %w", s.Name, err)
		}
		_ = setDescription(h, s.Description)
		return nil
	})
}

func setDescription(h windows.Handle, desc string) error {
	p, err := syscall.UTF16PtrFromString(desc)
	if err != nil {
		return err
	}
	d := windows.SERVICE_DESCRIPTION{Description: p}
	return windows.ChangeServiceConfig2(h, windows.SERVICE_CONFIG_DESCRIPTION, (*byte)(unsafe.Pointer(&d)))
}

func (w winSCM) Delete(name string) error {
	return w.with(name, windows.DELETE, func(h windows.Handle) error {
		if err := windows.DeleteService(h); err != nil && !errors.Is(err, windows.ERROR_SERVICE_MARKED_FOR_DELETE) {
			return fmt.Errorf("delete service %s: %w", name, err)
		}
		return nil
	})
}

func (w winSCM) SetDelayedAutoStart(name string) error {
	return w.with(name, windows.SERVICE_CHANGE_CONFIG, func(h windows.Handle) error {
		d := windows.SERVICE_DELAYED_AUTO_START_INFO{IsDelayedAutoStartUp: 1}
		return windows.ChangeServiceConfig2(h, windows.SERVICE_CONFIG_DELAYED_AUTO_START_INFO, (*byte)(unsafe.Pointer(&d)))
	})
}

func (w winSCM) SetRecovery(name string, delay, reset time.Duration) error {
	return w.with(name, windows.SERVICE_CHANGE_CONFIG|windows.SERVICE_START, func(h windows.Handle) error {
		s := &mgr.Service{Name: name, Handle: h}
		a := mgr.RecoveryAction{Type: mgr.ServiceRestart, Delay: delay}
		return s.SetRecoveryActions([]mgr.RecoveryAction{a, a, a}, uint32(reset/time.Second))
	})
}

func (w winSCM) SetRecoveryOnErrorExit(name string) error {
	return w.with(name, windows.SERVICE_CHANGE_CONFIG, func(h windows.Handle) error {
		s := &mgr.Service{Name: name, Handle: h}
		return s.SetRecoveryActionsOnNonCrashFailures(true)
	})
}

func (w winSCM) SetUnrestrictedSID(name string) error {
	return w.with(name, windows.SERVICE_CHANGE_CONFIG, func(h windows.Handle) error {
		t := uint32(windows.SERVICE_SID_TYPE_UNRESTRICTED)
		return windows.ChangeServiceConfig2(h, windows.SERVICE_CONFIG_SERVICE_SID_INFO, (*byte)(unsafe.Pointer(&t)))
	})
}

func (w winSCM) Start(name string) error {
	return w.with(name, windows.SERVICE_START|windows.SERVICE_QUERY_STATUS, func(h windows.Handle) error {
		if err := windows.StartService(h, 0, nil); err != nil && !errors.Is(err, windows.ERROR_SERVICE_ALREADY_RUNNING) {
			return fmt.Errorf("start service %s: %w (its log and `wbagent check` say why)", name, err)
		}
		return nil
	})
}

func (w winSCM) Stop(name string, timeout time.Duration) error {
	return w.with(name, windows.SERVICE_STOP|windows.SERVICE_QUERY_STATUS, func(h windows.Handle) error {
		var st windows.SERVICE_STATUS
		if err := windows.ControlService(h, windows.SERVICE_CONTROL_STOP, &st); err != nil &&
			!errors.Is(err, windows.ERROR_SERVICE_NOT_ACTIVE) {
			return fmt.Errorf("stop service %s: %w", name, err)
		}
		deadline := time.Now().Add(timeout)
		for {
			if err := windows.QueryServiceStatus(h, &st); err != nil {
				return fmt.Errorf("query service %s: %w", name, err)
			}
			if st.CurrentState == windows.SERVICE_STOPPED {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("stop service %s: still %s after %s", name, winStateOf(svc.State(st.CurrentState)), timeout)
			}
			time.Sleep(300 * time.Millisecond)
		}
	})
}

func (winSCM) EventSourceExists(name string) (bool, error) { return audit.EventSourceExists(name) }
func (winSCM) InstallEventSource(name string) error        { return audit.InstallEventSource(name) }
func (winSCM) RemoveEventSource(name string) error         { return audit.RemoveEventSource(name) }

func (winSCM) SecureDir(path, sddl string) error {
	sd, err := windows.SecurityDescriptorFromString(sddl)
	if err != nil {
		return fmt.Errorf("security descriptor %s: %w", sddl, err)
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return fmt.Errorf("security descriptor %s: %w", sddl, err)
	}
	owner, _, err := sd.Owner()
	if err != nil {
		return fmt.Errorf("security descriptor %s: %w", sddl, err)
	}
	group, _, err := sd.Group()
	if err != nil {
		return fmt.Errorf("security descriptor %s: %w", sddl, err)
	}
	// SetNamedSecurityInfo applies the inheritable entries to everything
	// already in the folder too.
	info := windows.SECURITY_INFORMATION(windows.OWNER_SECURITY_INFORMATION | windows.GROUP_SECURITY_INFORMATION |
		windows.DACL_SECURITY_INFORMATION | windows.PROTECTED_DACL_SECURITY_INFORMATION)
	if err := windows.SetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, info, owner, group, dacl, nil); err != nil {
		return fmt.Errorf("set the ACL of %s: %w", path, err)
	}
	return nil
}

// readDACLWindows returns the security descriptor of path in SDDL, DACL only.
func readDACLWindows(path string) (string, error) {
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		return "", fmt.Errorf("read the ACL of %s: %w", path, err)
	}
	return sd.String(), nil
}

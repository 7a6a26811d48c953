package main

import "wbagent/installer"

// systemdUnitTemplate is the hardened unit the packages ship, as a
// kardianos template, so `wbagent install` and the .deb/.rpm agree.
func systemdUnitTemplate() string { return installer.SystemdScript() }

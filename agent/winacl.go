package main

import (
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf16"
)

// The folder that holds the config, the keys and the state is locked to
// three principals on Windows: SYSTEM, Administrators and the service's own
// SID. `wbagent install` writes the security descriptor built here, the
// MSI writes the same one (installer/windows/postbuild.sql), and `check`
// reads it back. The strings are plain Go so they are tested on every
// system: Wine stores ACLs but never enforces them.

// Well-known SIDs the data folder grants access to.
const (
	sidSystem         = "S-1-5-18"
	sidAdministrators = "S-1-5-32-544"
)

// serviceSID is the per-service SID Windows derives from a service name
// (NT SERVICE\<name>): S-1-5-80 followed by the SHA-1 of the upper-case name
// in UTF-16LE, read as five little-endian 32-bit numbers. It exists whether
// the service runs as LocalSystem, its virtual account or a gMSA, once the
// service SID type is unrestricted (install and the MSI set it).
func serviceSID(name string) string {
	var b []byte
	for _, u := range utf16.Encode([]rune(strings.ToUpper(name))) {
		b = binary.LittleEndian.AppendUint16(b, u)
	}
	sum := sha1.Sum(b)
	sid := "S-1-5-80"
	for i := 0; i < 5; i++ {
		sid += fmt.Sprintf("-%d", binary.LittleEndian.Uint32(sum[4*i:]))
	}
	return sid
}

// dataDirSDDL is the security descriptor of the data folder: owner
// Administrators, a protected DACL (nothing inherited from ProgramData,
// where Users may read) granting full control to SYSTEM and Administrators
// and modify (0x1301bf: read, write, execute, delete; not change
// permissions or owner) to the service SID, each inherited by every
// subfolder (keys, senders, state, logs) and file.
func dataDirSDDL(serviceSID string) string {
	return "O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1301bf;;;" + serviceSID + ")"
}

// sddlAliases maps the SDDL short names of well-known SIDs that can appear
// in a DACL Windows prints to the SIDs, for the ones that matter here.
var sddlAliases = map[string]string{
	"SY": sidSystem, "BA": sidAdministrators, "BU": "S-1-5-32-545", "WD": "S-1-1-0",
	"AU": "S-1-5-11", "IU": "S-1-5-4", "NS": "S-1-5-20", "LS": "S-1-5-19",
	"CO": "S-1-3-0", "OW": "S-1-3-4", "AN": "S-1-5-7", "PU": "S-1-5-32-547",
}

// daclProblems reads the DACL of sddl (as GetNamedSecurityInfo prints it)
// and lists every allow entry for a principal outside allowed (SIDs), plus
// a missing or empty-of-meaning DACL. No problems means only allowed
// principals can get in.
func daclProblems(sddl string, allowed []string) []string {
	i := strings.Index(sddl, "D:")
	if i < 0 {
		return []string{"no DACL: everyone has full access"}
	}
	d := sddl[i+2:]
	k := strings.Index(d, "(")
	if k < 0 {
		k = len(d)
	}
	if flags := d[:k]; strings.Contains(flags, "NO_ACCESS_CONTROL") {
		return []string{"a null DACL: everyone has full access"}
	}
	ok := map[string]bool{}
	for _, s := range allowed {
		ok[strings.ToUpper(s)] = true
	}
	var problems []string
	// The entries follow as "(...)" one after another; whatever comes
	// after the last one (a SACL, "S:...") is not part of the DACL.
	for rest := d[k:]; strings.HasPrefix(rest, "("); {
		end := strings.Index(rest, ")")
		if end < 0 {
			problems = append(problems, fmt.Sprintf("unreadable entry %s", rest))
			break
		}
		ace := rest[1:end]
		rest = rest[end+1:]
		f := strings.Split(ace, ";")
		if len(f) < 6 {
			problems = append(problems, fmt.Sprintf("unreadable entry (%s)", ace))
			continue
		}
		typ, rights, sid := f[0], f[2], strings.ToUpper(f[5])
		if typ != "A" && typ != "OA" {
			continue // deny and audit entries take access away
		}
		if full, known := sddlAliases[sid]; known {
			sid = full
		}
		if !ok[sid] {
			problems = append(problems, fmt.Sprintf("%s is granted %s", principalName(sid), rights))
		}
	}
	return problems
}

// principalName names the SIDs an admin is likely to see in a problem.
func principalName(sid string) string {
	for alias, name := range map[string]string{"S-1-5-32-545": "Users", "S-1-1-0": "Everyone", "S-1-5-11": "Authenticated Users",
		"S-1-5-4": "INTERACTIVE", "S-1-3-0": "CREATOR OWNER", "S-1-5-7": "ANONYMOUS LOGON"} {
		if alias == sid {
			return name + " (" + sid + ")"
		}
	}
	return sid
}

package directory

import (
	"encoding/binary"
	"errors"
	"strings"
)

// Schema and rights GUIDs of the writeback's least privilege (facts page).
const (
	guidResetPassword   = "00299570-246d-11d0-a768-00aa006e0529" // extended right
	guidLockoutTime     = "28630ebf-41d5-11d1-a9c1-0000f80367c1" // attribute
	guidPwdLastSet      = "bf967a0a-0de6-11d0-a285-00aa003049e2" // attribute
	guidAcctRestriction = "4c164200-20c0-11d0-a768-00aa006e0529" // property set holding pwdLastSet
	guidUserClass       = "bf967aba-0de6-11d0-a285-00aa003049e2"
)

// Access mask bits used by AD.
const (
	rightControlAccess = 0x00000100 // ADS_RIGHT_DS_CONTROL_ACCESS
	rightWriteProperty = 0x00000020 // ADS_RIGHT_DS_WRITE_PROP
	rightGenericAll    = 0x10000000
	rightGenericWrite  = 0x40000000
)

// ACE types and flags.
const (
	aceAllowed       = 0x00
	aceDenied        = 0x01
	aceAllowedObject = 0x05
	aceDeniedObject  = 0x06

	aceContainerInherit = 0x02

	aceObjectTypePresent          = 0x1
	aceInheritedObjectTypePresent = 0x2
)

// ace is one parsed access control entry.
type ace struct {
	typ           byte
	flags         byte
	mask          uint32
	objectType    string // GUID text, "" when absent
	inheritedType string // GUID text, "" when absent
	sid           string
}

// parseDACL returns the ACEs of a self-relative security descriptor's DACL.
func parseDACL(sd []byte) ([]ace, error) {
	if len(sd) < 20 {
		return nil, errors.New("security descriptor too short")
	}
	off := int(binary.LittleEndian.Uint32(sd[16:20]))
	if off == 0 {
		return nil, nil // no DACL: nothing granted explicitly
	}
	if off+8 > len(sd) {
		return nil, errors.New("DACL offset out of range")
	}
	count := int(binary.LittleEndian.Uint16(sd[off+4:]))
	pos := off + 8
	var aces []ace
	for i := 0; i < count; i++ {
		if pos+4 > len(sd) {
			return nil, errors.New("ACE header out of range")
		}
		typ, flags := sd[pos], sd[pos+1]
		size := int(binary.LittleEndian.Uint16(sd[pos+2:]))
		if size < 8 || pos+size > len(sd) {
			return nil, errors.New("ACE size out of range")
		}
		body := sd[pos+4 : pos+size]
		pos += size
		a := ace{typ: typ, flags: flags, mask: binary.LittleEndian.Uint32(body)}
		rest := body[4:]
		switch typ {
		case aceAllowed, aceDenied:
		case aceAllowedObject, aceDeniedObject:
			if len(rest) < 4 {
				return nil, errors.New("object ACE too short")
			}
			of := binary.LittleEndian.Uint32(rest)
			rest = rest[4:]
			if of&aceObjectTypePresent != 0 {
				if len(rest) < 16 {
					return nil, errors.New("object ACE too short")
				}
				a.objectType = GUIDString(rest[:16])
				rest = rest[16:]
			}
			if of&aceInheritedObjectTypePresent != 0 {
				if len(rest) < 16 {
					return nil, errors.New("object ACE too short")
				}
				a.inheritedType = GUIDString(rest[:16])
				rest = rest[16:]
			}
		default:
			continue // audit, callback and other ACEs grant nothing here
		}
		if len(rest) < 8 {
			return nil, errors.New("ACE without SID")
		}
		n := int(rest[1])
		if len(rest) < 8+4*n {
			return nil, errors.New("ACE SID too short")
		}
		a.sid = sidString(rest[:8+4*n])
		aces = append(aces, a)
	}
	return aces, nil
}

// want is one right the check looks for on a scope OU.
type want struct {
	name   string
	mask   uint32
	guids  []string // object types that grant it (any one); none: any object type
	asAttr string   // attribute to look for in allowedAttributesEffective, "" for extended rights
}

var writebackRights = []want{
	{name: "reset password", mask: rightControlAccess, guids: []string{guidResetPassword}},
	{name: "write lockoutTime", mask: rightWriteProperty, guids: []string{guidLockoutTime}, asAttr: "lockoutTime"},
	{name: "write pwdLastSet", mask: rightWriteProperty, guids: []string{guidPwdLastSet, guidAcctRestriction}, asAttr: "pwdLastSet"},
}

// grantedToUsers reports whether the DACL of an OU gives one of sids the
// right w on the user objects below it (an ACE that containers pass on,
// for user objects or all objects), with no matching deny.
func grantedToUsers(aces []ace, sids map[string]bool, w want) bool {
	matches := func(a ace) bool {
		if !sids[a.sid] || a.flags&aceContainerInherit == 0 {
			return false
		}
		if a.inheritedType != "" && !strings.EqualFold(a.inheritedType, guidUserClass) {
			return false
		}
		if a.mask&rightGenericAll != 0 {
			return true
		}
		if w.mask == rightWriteProperty && a.mask&rightGenericWrite != 0 {
			return true
		}
		if a.mask&w.mask == 0 {
			return false
		}
		if a.objectType == "" {
			return true
		}
		for _, g := range w.guids {
			if strings.EqualFold(a.objectType, g) {
				return true
			}
		}
		return false
	}
	granted := false
	for _, a := range aces {
		if !matches(a) {
			continue
		}
		switch a.typ {
		case aceDenied, aceDeniedObject:
			return false
		default:
			granted = true
		}
	}
	return granted
}

<#
.SYNOPSIS
Grants wbagent's service account exactly the rights password writeback needs
on one OU of a Windows Active Directory domain.

.DESCRIPTION
Adds, with dsacls, three inherit-only entries that apply to user objects
below the OU (nothing on the OU itself, nothing on other object classes):

  Reset Password   extended right 00299570-246d-11d0-a768-00aa006e0529
  write lockoutTime             28630ebf-41d5-11d1-a9c1-0000f80367c1
  write pwdLastSet              bf967a0a-0de6-11d0-a285-00aa003049e2

the same as (OA;CIIO;CR|WP;<right>;bf967aba-0de6-11d0-a285-00aa003049e2;<SID>)
written by delegate-samba.sh. Change Password needs no grant: AD gives it to
Everyone. Do not put the account in Domain Admins or Account Operators:
accounts protected by AdminSDHolder lose delegated rights every hour, and
wbagent refuses to write privileged accounts anyway.

Run once per OU listed in directory.scope.includeOUs, as a member of Domain
Admins (or an account allowed to change permissions on the OU). Running it
twice is harmless. `wbagent check` verifies the result.

.PARAMETER Account
The service account: DOMAIN\name, or name in the current user's domain. For a
group managed service account give its sAMAccountName with the trailing $
(CORP\wbagent$).

.PARAMETER OU
The OU's distinguished name, e.g. OU=Staff,DC=corp,DC=example,DC=test.

.PARAMETER Server
A domain controller to write the permissions on; default: dsacls's choice.

.EXAMPLE
.\Delegate-Writeback.ps1 -Account CORP\svc-writeback -OU "OU=Staff,DC=corp,DC=example,DC=test"

.EXAMPLE
.\Delegate-Writeback.ps1 -Account 'CORP\wbagent$' -OU "OU=Staff,DC=corp,DC=example,DC=test" -WhatIf
#>
[CmdletBinding(SupportsShouldProcess = $true)]
param(
    [Parameter(Mandatory = $true)] [string] $Account,
    [Parameter(Mandatory = $true)] [string] $OU,
    [string] $Server
)

$ErrorActionPreference = 'Stop'

if (-not (Get-Command dsacls.exe -ErrorAction SilentlyContinue)) {
    throw 'dsacls.exe not found: run this on a domain controller or install the RSAT AD DS tools'
}
if ($OU -notmatch '^(OU|CN)=.+,DC=') {
    throw "OU '$OU' is not a distinguished name such as OU=Staff,DC=corp,DC=example,DC=test"
}

$principal = $Account
if ($principal -notmatch '\\') {
    $principal = "$env:USERDOMAIN\$principal"
}
# Fail early, with a clear message, when the account does not resolve.
try {
    [void](New-Object System.Security.Principal.NTAccount($principal)).Translate([System.Security.Principal.SecurityIdentifier])
} catch {
    throw "account '$principal' not found in the domain: give DOMAIN\name (gMSA: DOMAIN\name$)"
}

$target = $OU
if ($Server) {
    $target = "\\$Server\$OU"
}

# dsacls: /I:S = this entry is inherited by sub-objects only (CI|IO);
# CA = control access (extended right), WP = write property; the last field
# limits it to objects of class user.
$grants = @(
    'CA;Reset Password;user',
    'WP;lockoutTime;user',
    'WP;pwdLastSet;user'
)
foreach ($grant in $grants) {
    if ($PSCmdlet.ShouldProcess($OU, "grant ${principal}: $grant")) {
        $out = & dsacls.exe $target /I:S /G "${principal}:$grant" 2>&1
        if ($LASTEXITCODE -ne 0) {
            throw "dsacls failed (exit $LASTEXITCODE) granting '$grant' on ${OU}: $($out | Out-String)"
        }
        Write-Output "granted on ${OU}: $grant to $principal"
    }
}

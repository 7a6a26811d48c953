-- Windows Installer tables and rows wixl cannot produce, applied to the MSI
-- after wixl by installer/package.sh (one msibuild -q per statement; a
-- statement ends with ";" at the end of a line; "--" lines are comments).
-- Each block names the WiX element it stands in for.

-- <Component Permanent="yes" NeverOverwrite="yes">: the config file stays on
-- uninstall and is never replaced by an upgrade or repair
-- (256 = 64-bit, 16 = permanent, 128 = never overwrite).
UPDATE `Component` SET `Attributes` = 400 WHERE `Component` = 'Config';
-- <Component Permanent="yes">: the key folders (and what is in them) stay.
UPDATE `Component` SET `Attributes` = 272 WHERE `Component` = 'KeysDir';
UPDATE `Component` SET `Attributes` = 272 WHERE `Component` = 'SendersDir';

-- <MajorUpgrade AllowSameVersionUpgrades="yes">: builds between two tags share
-- N.N.N, so a rebuilt MSI must replace an installed one of the same version.
-- wixl's row detects versions below this one only, and Attributes is part of
-- the Upgrade key (no UPDATE), so the row is replaced by one that detects
-- every version from 0.0.0 up (1 = migrate features, 256 = include minimum).
-- A newer installed version is still refused: wixl's WIX_DOWNGRADE_DETECTED
-- row and its launch condition stay, and launch conditions (100) run before
-- RemoveExistingProducts (1401).
DELETE FROM `Upgrade` WHERE `ActionProperty` = 'WIX_UPGRADE_DETECTED';
INSERT INTO `Upgrade` (`UpgradeCode`, `VersionMin`, `Attributes`, `ActionProperty`) VALUES ('{55930518-87E2-4ECA-85A3-4770EAEEE773}', '0.0.0', 257, 'WIX_UPGRADE_DETECTED');

-- <Property Secure="yes">: SERVICEACCOUNT given on the msiexec command line
-- reaches the elevated (server) side of the install.
-- PURGEDATA (below) likewise.
UPDATE `Property` SET `Value` = 'WIX_DOWNGRADE_DETECTED;WIX_UPGRADE_DETECTED;SERVICEACCOUNT;PURGEDATA' WHERE `Property` = 'SecureCustomProperties';

-- <ServiceConfig> (native, Windows Installer 5): delayed automatic start (3),
-- failure actions also when the service stops with an error exit code (4),
-- and an unrestricted service SID (5), NT SERVICE\wbagent, granted access to
-- %ProgramData%\wbagent below so a gMSA account works without extra ACLs.
-- Event 5 = on install and on reinstall.
CREATE TABLE `MsiServiceConfig` (`MsiServiceConfig` CHAR(72) NOT NULL, `Name` CHAR(255) NOT NULL LOCALIZABLE, `Event` SHORT NOT NULL, `ConfigType` LONG NOT NULL, `Argument` CHAR(255) LOCALIZABLE, `Component_` CHAR(72) NOT NULL PRIMARY KEY `MsiServiceConfig`);
INSERT INTO `MsiServiceConfig` (`MsiServiceConfig`, `Name`, `Event`, `ConfigType`, `Argument`, `Component_`) VALUES ('AgentDelayedStart', 'wbagent', 5, 3, '1', 'AgentExe');
INSERT INTO `MsiServiceConfig` (`MsiServiceConfig`, `Name`, `Event`, `ConfigType`, `Argument`, `Component_`) VALUES ('AgentFailureActionsOnError', 'wbagent', 5, 4, '1', 'AgentExe');
INSERT INTO `MsiServiceConfig` (`MsiServiceConfig`, `Name`, `Event`, `ConfigType`, `Argument`, `Component_`) VALUES ('AgentServiceSid', 'wbagent', 5, 5, '1', 'AgentExe');

-- <ServiceConfigFailureActions>: restart after 20 s on the first, second and
-- later failures; the failure count resets after 24 h (86400 s).
CREATE TABLE `MsiServiceConfigFailureActions` (`MsiServiceConfigFailureActions` CHAR(72) NOT NULL, `Name` CHAR(255) NOT NULL LOCALIZABLE, `Event` SHORT NOT NULL, `ResetPeriod` LONG, `RebootMessage` CHAR(255) LOCALIZABLE, `Command` CHAR(255) LOCALIZABLE, `Actions` CHAR(255), `DelayActions` CHAR(255), `Component_` CHAR(72) NOT NULL PRIMARY KEY `MsiServiceConfigFailureActions`);
INSERT INTO `MsiServiceConfigFailureActions` (`MsiServiceConfigFailureActions`, `Name`, `Event`, `ResetPeriod`, `Actions`, `DelayActions`, `Component_`) VALUES ('AgentRecovery', 'wbagent', 5, 86400, '1[~]1[~]1', '20000[~]20000[~]20000', 'AgentExe');

-- MsiConfigureServices applies the two tables above; WiX schedules it between
-- InstallServices (5800) and StartServices (5900).
INSERT INTO `InstallExecuteSequence` (`Action`, `Condition`, `Sequence`) VALUES ('MsiConfigureServices', 'VersionNT >= 600', 5850);

-- <PermissionEx Sddl=...> on <CreateFolder> of %ProgramData%\wbagent: owner
-- Administrators; a protected DACL (nothing inherited from ProgramData, where
-- Users may read) granting full control to SYSTEM (SY) and Administrators
-- (BA), and modify to the service SID NT SERVICE\wbagent; inherited by keys\,
-- senders\, state\, logs\ and every file.
CREATE TABLE `MsiLockPermissionsEx` (`MsiLockPermissionsEx` CHAR(72) NOT NULL, `LockObject` CHAR(72) NOT NULL, `Table` CHAR(32) NOT NULL, `SDDL` LONGCHAR NOT NULL, `Condition` CHAR(255) PRIMARY KEY `MsiLockPermissionsEx`);
INSERT INTO `MsiLockPermissionsEx` (`MsiLockPermissionsEx`, `LockObject`, `Table`, `SDDL`) VALUES ('DataDirAcl', 'DATADIR', 'CreateFolder', 'O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1301bf;;;S-1-5-80-3125127946-8542445-485688279-249439853-514069362)');

-- <RegistryValue Type="expandable">: wixl drops the type and writes
-- EventMessageFile as REG_SZ, where %SystemRoot% is not expanded and events
-- show "the description cannot be found". A Registry value that starts
-- with "#%" is written as REG_EXPAND_SZ.
UPDATE `Registry` SET `Value` = '#%%SystemRoot%\Microsoft.NET\Framework64\v4.0.30319\EventLogMessages.dll' WHERE `Name` = 'EventMessageFile';

-- <CustomAction Directory="TARGETDIR" ExeCommand=... Execute="deferred"
-- Impersonate="no" Return="ignore">: `msiexec /x ... PURGEDATA=1` also
-- removes %ProgramData%\wbagent (config, keys, sender keys, state, audit,
-- logs), which the permanent components above otherwise keep. Only on a
-- real uninstall: never on a repair or change (REMOVE is not ALL) nor when
-- a major upgrade removes the older version (UPGRADINGPRODUCTCODE), and
-- only for exactly "1". Type 3170 = 34 (a command run in a folder, here the
-- root of the drive, which the uninstall does not remove) + 64 (exit code
-- ignored) + 1024 (deferred: in the script) + 2048 (as SYSTEM, which the
-- folder's ACL lets in). It is the script's last step (6590: after
-- PublishProduct, before InstallFinalize), so an uninstall that fails or
-- is cancelled rolls back before the data is touched. Not a commit action,
-- which would do the same but never runs where policy disables rollback.
-- cmd.exe's rd, not the installed wbagent.exe: the exe is gone by then
-- (and Wine's msiexec runs every in-script action at InstallFinalize). A
-- file another program holds open at that moment stays.
INSERT INTO `CustomAction` (`Action`, `Type`, `Source`, `Target`) VALUES ('PurgeDataDir', 3170, 'TARGETDIR', '"[System64Folder]cmd.exe" /c if exist "[DATADIR]" rd /s /q "[DATADIR]"');
INSERT INTO `InstallExecuteSequence` (`Action`, `Condition`, `Sequence`) VALUES ('PurgeDataDir', 'PURGEDATA="1" AND REMOVE~="ALL" AND NOT UPGRADINGPRODUCTCODE', 6590);

// Command wbagent applies signed, end-to-end encrypted password writebacks
// from Azure Service Bus to Active Directory. main only wires the process to
// run, which tests call directly.
package main

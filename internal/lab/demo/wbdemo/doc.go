// Command wbdemo runs the end-to-end demonstration behind `make demo`: see
// package wbagent/internal/lab/demo.
package main

package main

import "strings"

// repeatedFlag is a flag that may be given many times: each value is parsed
// by parse and appended to list, so a bad one is a usage error naming it.
// name labels a value where the flag package prints the current list.
type repeatedFlag[T any] struct {
	list  []T
	parse func(string) (T, error)
	name  func(T) string
}

// String is called by the flag package on a zero repeatedFlag too, so it
// must not need name for an empty list.
func (r *repeatedFlag[T]) String() string {
	names := make([]string, len(r.list))
	for i, v := range r.list {
		names[i] = r.name(v)
	}
	return strings.Join(names, " ")
}

// Set parses one value and appends it.
func (r *repeatedFlag[T]) Set(v string) error {
	c, err := r.parse(v)
	if err != nil {
		return err
	}
	r.list = append(r.list, c)
	return nil
}

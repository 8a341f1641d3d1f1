package main

import (
	"fmt"
	"slices"

	"github.com/spf13/pflag"
)

// listEdit is one list setting of `client update` or `serviceaccount update` (grants, scopes,
// audiences, redirect URIs): --NAME replaces the whole list; --add-NAME and --remove-NAME change it
// and keep the rest.
type listEdit struct {
	name   string // flag stem: grant, scope, audience, redirect-uri
	plural string // for messages: grants, scopes, …
	// parse normalises values (grant short names); nil keeps them as given.
	parse            func(flag string, values []string) ([]string, error)
	set, add, remove []string
}

// register adds --NAME, --add-NAME and --remove-NAME; what describes one value.
func (e *listEdit) register(f *pflag.FlagSet, what string) {
	f.StringSliceVar(&e.add, "add-"+e.name, nil, "add "+what+", keeping the others (repeatable)")
	f.StringSliceVar(&e.remove, "remove-"+e.name, nil, "remove "+what+" (repeatable)")
	f.StringSliceVar(&e.set, e.name, nil, "REPLACE the whole list with these (repeatable); to keep the others use --add-"+e.name)
}

// named reports whether any of the edit's flags was given.
func (e *listEdit) named(f *pflag.FlagSet) bool {
	return f.Changed(e.name) || f.Changed("add-"+e.name) || f.Changed("remove-"+e.name)
}

// apply returns current after the edit. Removing a value the list lacks is refused (likely a typo),
// as is naming a value in both --add and --remove, or mixing --NAME with --add/--remove. owner
// names the list's owner in messages (`client "x"`).
func (e *listEdit) apply(f *pflag.FlagSet, owner string, current []string) ([]string, error) {
	norm := func(flag string, v []string) ([]string, error) {
		if e.parse == nil {
			var out []string
			for _, s := range v {
				if !slices.Contains(out, s) {
					out = append(out, s)
				}
			}
			return out, nil
		}
		return e.parse(flag, v)
	}
	replace, edit := f.Changed(e.name), f.Changed("add-"+e.name) || f.Changed("remove-"+e.name)
	switch {
	case replace && edit:
		return nil, fmt.Errorf("--%s replaces the whole list: use it alone, or change the list with --add-%s and --remove-%s", e.name, e.name, e.name)
	case replace:
		return norm("--"+e.name, e.set)
	case !edit:
		return current, nil
	}
	add, err := norm("--add-"+e.name, e.add)
	if err != nil {
		return nil, err
	}
	remove, err := norm("--remove-"+e.name, e.remove)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(current)
	for _, v := range remove {
		if slices.Contains(add, v) {
			return nil, fmt.Errorf("--add-%s and --remove-%s both name %s", e.name, e.name, v)
		}
		if !slices.Contains(out, v) {
			return nil, fmt.Errorf("--remove-%s %s: %s does not have it; its %s are: %s", e.name, v, owner, e.plural, listOrNone(out))
		}
		out = slices.DeleteFunc(out, func(have string) bool { return have == v })
	}
	for _, v := range add {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

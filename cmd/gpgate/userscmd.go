package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gpgate/gpgate/viewer/users"
	"github.com/gpgate/gpgate/viewer/users/boltstore"
)

// usersStdin is where --password-stdin reads from (tests replace it).
var usersStdin io.Reader = os.Stdin

func runUsers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func(w io.Writer) {
		fmt.Fprint(w, `Usage:
  gpgate users add --username U --org ODS --role ROLE --sds-id N [--name NAME] --password-stdin [--data DIR]
        create a Shared Record Viewer account for a clinician of consumer organisation ODS
  gpgate users list [--data DIR]
  gpgate users disable --username U [--data DIR]
  gpgate users enable --username U [--data DIR]
  gpgate users reset --username U --password-stdin [--data DIR]
        set a new password (the user's open sessions end)

The password is read from the first line of standard input (at least 12 characters)
and stored as an Argon2id hash. Accounts live in DIR/gpgate.db (bucket viewer_users);
stop gpgate serve before changing them.
`)
	}
	if done, err := helpRequested(args, usage, stdout); done {
		return err
	}
	sub := args[0]
	var o struct {
		data, username, org, role, sds, name string
		pwStdin                              bool
	}
	fs := newFlags("users "+sub+" [flags]", "Manage the Shared Record Viewer's local clinician accounts.", stderr)
	fs.StringVar(&o.data, "data", "./gpgate-data", "data directory")
	switch sub {
	case "add":
		fs.StringVar(&o.username, "username", "", "username (required)")
		fs.StringVar(&o.org, "org", "", "the clinician's organisation ODS code (required)")
		fs.StringVar(&o.role, "role", "", "the clinician's role (required)")
		fs.StringVar(&o.sds, "sds-id", "", "the clinician's SDS user id (required)")
		fs.StringVar(&o.name, "name", "", "display name shown in the viewer and on printouts")
		fs.BoolVar(&o.pwStdin, "password-stdin", false, "read the password from standard input (required)")
	case "reset":
		fs.StringVar(&o.username, "username", "", "username (required)")
		fs.BoolVar(&o.pwStdin, "password-stdin", false, "read the password from standard input (required)")
	case "disable", "enable":
		fs.StringVar(&o.username, "username", "", "username (required)")
	case "list":
	default:
		fmt.Fprintf(stderr, "gpgate users: unknown subcommand %q\n", sub)
		usage(stderr)
		return errUsage
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if sub != "list" && o.username == "" {
		fs.Usage()
		return fmt.Errorf("--username is required")
	}
	var hash string
	if sub == "add" || sub == "reset" {
		if !o.pwStdin {
			fs.Usage()
			return fmt.Errorf("--password-stdin is required (passwords are never taken as arguments)")
		}
		pw, err := readPassword(usersStdin)
		if err != nil {
			return err
		}
		if err := users.CheckPasswordPolicy(pw); err != nil {
			return err
		}
		if hash, err = users.Hash(pw, users.DefaultParams); err != nil {
			return err
		}
	}
	if sub == "add" {
		// validate before opening the state file, so a typo costs nothing
		u := &users.User{Username: users.Normalise(o.username), Name: o.name, Org: strings.ToUpper(o.org), Role: o.role, SDSID: o.sds, Hash: hash}
		if err := u.Validate(); err != nil {
			return err
		}
	}
	st, err := openState(o.data)
	if err != nil {
		return err
	}
	defer st.Close()
	store, err := boltstore.New(st.db)
	if err != nil {
		return err
	}
	name := users.Normalise(o.username)
	switch sub {
	case "add":
		u := &users.User{Username: name, Name: o.name, Org: strings.ToUpper(o.org), Role: o.role, SDSID: o.sds, Hash: hash}
		if err := store.Add(ctx, u); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "user %s added for %s\n", name, u.Org)
	case "reset":
		if err := store.SetPassword(ctx, name, hash); err != nil {
			return userErr(err, name)
		}
		fmt.Fprintf(stdout, "user %s password reset\n", name)
	case "disable", "enable":
		if err := store.SetDisabled(ctx, name, sub == "disable"); err != nil {
			return userErr(err, name)
		}
		fmt.Fprintf(stdout, "user %s %sd\n", name, sub)
	case "list":
		us, err := store.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tNAME\tORG\tROLE\tSDS ID\tENABLED\tPASSWORD SET")
		for _, u := range us {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%s\n", u.Username, u.Name, u.Org, u.Role, u.SDSID, !u.Disabled, u.PasswordSet.Format(time.RFC3339))
		}
		tw.Flush()
	}
	return nil
}

func userErr(err error, name string) error {
	if errors.Is(err, users.ErrNotFound) {
		return fmt.Errorf("no user %q", name)
	}
	return err
}

// readPassword reads the first line of r, without its line ending.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, users.MaxPasswordLen+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("no password on standard input")
	}
	return line, nil
}

package cli

import (
	"flag"
	"fmt"
	"io"

	"github.com/auditq/auditq/ports"
)

// Version implements "auditq version" (also "auditq --version"): it prints
// the binary's version from its build information, with the commit, its
// time and whether the work tree was modified when known, and the Go
// version. The micro service reports the same version (ports.ReadBuild).
// It needs no configuration.
func Version(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = usage(fs, out, "Usage: auditq version    print the version of this auditq binary")
	if help, err := parseFlags(fs, args, false); help || err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "auditq %s\n", ports.ReadBuild())
	return err
}

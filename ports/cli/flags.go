package cli

import (
	"errors"
	"flag"
	"fmt"
)

// parseFlags parses args into fs. help is true when -h or --help was asked
// for: the usage is printed and the command should return err (nil).
// Positional arguments are an error unless allowArgs.
func parseFlags(fs *flag.FlagSet, args []string, allowArgs bool) (help bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, err
	}
	if !allowArgs && fs.NArg() > 0 {
		return false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return false, nil
}

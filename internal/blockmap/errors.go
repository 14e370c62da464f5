package blockmap

import "errors"

// ErrBroken is wrapped by the errors of Check.
var ErrBroken = errors.New("blockmap: invariant broken")

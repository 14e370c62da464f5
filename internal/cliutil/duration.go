package cliutil

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseDuration parses a duration as time.ParseDuration does ("90s",
// "12h30m"), and also whole or fractional days, "7d" or "1.5d", which
// intervals of days read better in.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n < 0 || n > 100000 {
			return 0, fmt.Errorf("invalid duration %q: want e.g. 7d, 12h or 30m", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want e.g. 7d, 12h or 30m", s)
	}
	return d, nil
}

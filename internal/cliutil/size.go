package cliutil

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"strconv"
	"strings"
)

// units maps the accepted suffixes, lower-cased, to their multipliers. All of
// them are binary: K and KiB both mean 1024.
var units = map[string]int64{
	"":    1,
	"b":   1,
	"k":   1 << 10,
	"kib": 1 << 10,
	"m":   1 << 20,
	"mib": 1 << 20,
	"g":   1 << 30,
	"gib": 1 << 30,
	"t":   1 << 40,
	"tib": 1 << 40,
	"p":   1 << 50,
	"pib": 1 << 50,
}

// SizeSyntax describes what ParseSize accepts, for error messages and help.
const SizeSyntax = "a number of bytes with an optional binary suffix K, M, G, T or P (or KiB, MiB, ...), e.g. 4096, 512M, 10G"

// ParseSize parses a byte count such as "4096", "4K", "512M", "1.5G", "10GiB"
// or "1T". Suffixes are binary and case-insensitive (K = KiB = 1024); a
// fraction is allowed when the result is a whole number of bytes. The result is
// always positive: zero, negative and overflowing sizes are errors. Error
// messages name the input and say what is accepted; they do not name a flag.
func ParseSize(s string) (int64, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, errors.New("empty size: want " + SizeSyntax)
	}
	i := 0
	for i < len(in) && (in[i] >= '0' && in[i] <= '9' || in[i] == '.' || in[i] == '-' || in[i] == '+') {
		i++
	}
	num, suffix := in[:i], strings.ToLower(strings.TrimSpace(in[i:]))
	mult, ok := units[suffix]
	if !ok || num == "" {
		return 0, fmt.Errorf("invalid size %q: want %s", s, SizeSyntax)
	}
	if strings.HasPrefix(num, "-") {
		return 0, fmt.Errorf("invalid size %q: must be positive", s)
	}
	num = strings.TrimPrefix(num, "+")
	if strings.ContainsAny(num, "+-") || strings.Count(num, ".") > 1 || num == "." {
		return 0, fmt.Errorf("invalid size %q: want %s", s, SizeSyntax)
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("invalid size %q: want %s", s, SizeSyntax)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	switch {
	case r.Sign() == 0:
		return 0, fmt.Errorf("invalid size %q: must be greater than zero", s)
	case !r.IsInt():
		return 0, fmt.Errorf("invalid size %q: not a whole number of bytes", s)
	case !r.Num().IsInt64():
		return 0, fmt.Errorf("invalid size %q: too large (at most %s)", s, FormatSize(math.MaxInt64))
	}
	return r.Num().Int64(), nil
}

// FormatSize renders n bytes for people: "512 B", "4 KiB", "1.5 GiB". Values
// that are not a whole number of the unit get one decimal, rounded down so
// that a size never looks larger than it is.
func FormatSize(n int64) string {
	if n < 0 {
		return "-" + FormatSize(-n)
	}
	names := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	u := 0
	for u+1 < len(names) && n>>(10*(u+1)) > 0 {
		u++
	}
	if u == 0 {
		return strconv.FormatInt(n, 10) + " B"
	}
	unit := int64(1) << (10 * u)
	whole, rem := n/unit, n%unit
	if rem == 0 {
		return fmt.Sprintf("%d %s", whole, names[u])
	}
	hi, lo := bits.Mul64(uint64(rem), 10) // rem*10 may overflow int64
	tenths, _ := bits.Div64(hi, lo, uint64(unit))
	return fmt.Sprintf("%d.%d %s", whole, tenths, names[u])
}

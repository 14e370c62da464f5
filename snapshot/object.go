package snapshot

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// ObjectID names one map object: generation Gen of snapshot ID's map.
type ObjectID struct {
	ID  ID
	Gen Gen
}

// Dir is the folder of vol's snapshot map objects.
func Dir(vol string) string { return path.Join(vol, "snap") }

// ObjectName names generation gen of snapshot id's map object of volume
// vol: VOL/snap/<id as 8 hex digits>, with ".<gen>" (decimal) for gen > 0.
func ObjectName(vol string, id ID, gen Gen) string {
	if gen == 0 {
		return path.Join(Dir(vol), fmt.Sprintf("%08x", uint32(id)))
	}
	return path.Join(Dir(vol), fmt.Sprintf("%08x.%d", uint32(id), gen))
}

// ParseObjectName parses a name listed in Dir (no folder): ok is false
// for temporaries and foreign names.
func ParseObjectName(n string) (o ObjectID, ok bool) {
	hex, rest, hasGen := strings.Cut(n, ".")
	id, err := strconv.ParseUint(hex, 16, 32)
	if err != nil || fmt.Sprintf("%08x", id) != hex { // exactly as ObjectName writes it
		return o, false
	}
	o.ID = ID(id)
	if hasGen {
		gen, err := strconv.ParseUint(rest, 10, 32)
		if err != nil || gen == 0 || strconv.FormatUint(gen, 10) != rest {
			return o, false
		}
		o.Gen = Gen(gen)
	}
	return o, true
}

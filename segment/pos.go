package segment

import "fmt"

// Pos is a position in a volume's log: byte Off of segment Seq. Segments are
// numbered from 1; the zero Pos is "nowhere" (before the log, or none).
// Positions order records: a record at a smaller Pos was appended earlier.
type Pos struct {
	Seq uint64
	Off int64
}

// Less reports whether p comes before q in the log.
func (p Pos) Less(q Pos) bool {
	return p.Seq < q.Seq || (p.Seq == q.Seq && p.Off < q.Off)
}

// String formats p as "seq/off".
func (p Pos) String() string { return fmt.Sprintf("%d/%d", p.Seq, p.Off) }

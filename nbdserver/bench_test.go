package nbdserver

import (
	"encoding/binary"
	"fmt"
	"io"
	"testing"
	"time"
)

// BenchmarkTransmission measures request throughput over loopback TCP with
// 16 requests in flight against a memory export (the export's own mutex is
// part of the cost).
func BenchmarkTransmission(b *testing.B) {
	const depth = 16
	const exportSize = 64 << 20
	for _, op := range []uint16{cmdRead, cmdWrite} {
		for _, size := range []int{4 << 10, 64 << 10, 1 << 20} {
			b.Run(fmt.Sprintf("%s/%dK", cmdName(op), size>>10), func(b *testing.B) {
				cat := newCatalog()
				cat.add("v", newMemExport(exportSize), ExportInfo{})
				ts := startServer(b, cat, Options{})
				c := connect(b, ts, "v", false, false)
				c.nc.SetDeadline(time.Time{})

				slots := make(chan struct{}, depth)
				sendErr := make(chan error, 1)
				b.SetBytes(int64(size))
				b.ResetTimer()
				go func() {
					req := make([]byte, requestSize+size)
					for i := range b.N {
						slots <- struct{}{}
						n := requestSize
						if op == cmdWrite {
							n += size
						}
						putRequest(req, request{typ: op, cookie: uint64(i), offset: uint64(i%(exportSize/size)) * uint64(size), length: uint32(size)})
						if _, err := c.nc.Write(req[:n]); err != nil {
							sendErr <- err
							return
						}
					}
					sendErr <- nil
				}()
				var hdr [simpleReplySize]byte
				data := make([]byte, size)
				for range b.N {
					if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
						b.Fatal(err)
					}
					if e := binary.BigEndian.Uint32(hdr[4:]); e != 0 {
						b.Fatalf("errno %d", e)
					}
					if op == cmdRead {
						if _, err := io.ReadFull(c.br, data); err != nil {
							b.Fatal(err)
						}
					}
					<-slots
				}
				if err := <-sendErr; err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
			})
		}
	}
}

package nbdserver

import (
	"encoding/binary"
	"fmt"
	"io"
	"testing"
	"time"
)

// BenchmarkTransmission measures request throughput over loopback TCP, in
// clear and over TLS (an ECDSA certificate, TLS 1.3; the client's side of
// TLS is part of the cost), with 16 requests in flight against a memory
// export (the export's own mutex is part of the cost).
func BenchmarkTransmission(b *testing.B) {
	const depth = 16
	const exportSize = 64 << 20
	p := newPKI(b)
	for _, transport := range []string{"clear", "tls"} {
		for _, op := range []uint16{cmdRead, cmdWrite} {
			for _, size := range []int{4 << 10, 64 << 10, 1 << 20} {
				b.Run(fmt.Sprintf("%s/%s/%dK", transport, cmdName(op), size>>10), func(b *testing.B) {
					benchTransmission(b, p, transport == "tls", op, size, depth, exportSize)
				})
			}
		}
	}
}

func benchTransmission(b *testing.B, p *pki, overTLS bool, op uint16, size, depth, exportSize int) {
	cat := newCatalog()
	cat.add("v", newMemExport(int64(exportSize)), ExportInfo{})
	opts := Options{}
	if overTLS {
		opts.TLS = p.tlsOptions(b, TLSRequire, false)
	}
	ts := startServer(b, cat, opts)
	c := dial(b, ts)
	c.greet(clientFlagFixedNewstyle | clientFlagNoZeroes)
	if overTLS {
		c.mustStartTLS(p.clientConfig(nil))
	}
	c.goExport("v")
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
}

package nbdserver

import (
	"encoding/binary"
	"time"

	"github.com/pojntfx/go-nbd/pkg/protocol"
)

// Wire format (all integers big-endian, "network byte order"), after
// https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md.
// Constants that github.com/pojntfx/go-nbd/pkg/protocol defines are taken
// from there; the rest are defined here with the spec's values.
//
// Handshake (fixed newstyle):
//
//	S: NBDMAGIC (8) IHAVEOPT (8) handshake flags (2)
//	C: client flags (4)
//	C: IHAVEOPT (8) option (4) length (4) data (length)        repeated
//	S: reply magic (8) option (4) reply type (4) length (4) data
//
// Transmission:
//
//	request           magic (4) flags (2) type (2) cookie (8) offset (8) length (4) [data]
//	simple reply      magic (4) error (4) cookie (8) [data]
//	structured chunk  magic (4) flags (2) type (2) cookie (8) length (4) payload

// Handshake magics and flags.
const (
	magicNBD    = protocol.NEGOTIATION_MAGIC_OLDSTYLE // "NBDMAGIC"
	magicOption = protocol.NEGOTIATION_MAGIC_OPTION   // "IHAVEOPT"
	magicOptRep = protocol.NEGOTIATION_MAGIC_REPLY    // option reply magic

	flagFixedNewstyle = protocol.NEGOTIATION_HANDSHAKE_FLAG_FIXED_NEWSTYLE
	flagNoZeroes      = uint16(1 << 1)

	clientFlagFixedNewstyle = uint32(1 << 0)
	clientFlagNoZeroes      = uint32(1 << 1)
	clientFlagsKnown        = clientFlagFixedNewstyle | clientFlagNoZeroes

	greetingSize     = 18 // NBDMAGIC + IHAVEOPT + handshake flags
	optHeaderSize    = 16 // IHAVEOPT + option + length
	optRepHeaderSize = 20 // magic + option + type + length
	exportNameZeroes = 124
)

// Option types.
const (
	optExportName      = uint32(1)
	optAbort           = protocol.NEGOTIATION_ID_OPTION_ABORT
	optList            = protocol.NEGOTIATION_ID_OPTION_LIST
	optStartTLS        = uint32(5)
	optInfo            = protocol.NEGOTIATION_ID_OPTION_INFO
	optGo              = protocol.NEGOTIATION_ID_OPTION_GO
	optStructuredReply = uint32(8)
	optListMetaContext = uint32(9)
	optSetMetaContext  = uint32(10)
)

// Option reply types.
const (
	repAck          = protocol.NEGOTIATION_TYPE_REPLY_ACK
	repServer       = protocol.NEGOTIATION_TYPE_REPLY_SERVER
	repInfo         = protocol.NEGOTIATION_TYPE_REPLY_INFO
	repMetaContext  = uint32(4)
	repErrUnsup     = protocol.NEGOTIATION_TYPE_REPLY_ERR_UNSUPPORTED
	repErrPolicy    = uint32(1<<31 | 2)
	repErrInvalid   = uint32(1<<31 | 3)
	repErrTLSReqd   = uint32(1<<31 | 5)
	repErrUnknown   = protocol.NEGOTIATION_TYPE_REPLY_ERR_UNKNOWN
	repErrTooBig    = uint32(1<<31 | 9)
	repErrorBit     = uint32(1 << 31)
	infoExport      = protocol.NEGOTIATION_TYPE_INFO_EXPORT
	infoName        = protocol.NEGOTIATION_TYPE_INFO_NAME
	infoDescription = protocol.NEGOTIATION_TYPE_INFO_DESCRIPTION
	infoBlockSize   = protocol.NEGOTIATION_TYPE_INFO_BLOCKSIZE
)

// Transmission flags (sent with the export size).
const (
	tflagHasFlags        = protocol.NEGOTIATION_REPLY_FLAGS_HAS_FLAGS
	tflagReadOnly        = uint16(1 << 1)
	tflagSendFlush       = uint16(1 << 2)
	tflagSendFUA         = uint16(1 << 3)
	tflagSendTrim        = uint16(1 << 5)
	tflagSendWriteZeroes = uint16(1 << 6)
	tflagSendDF          = uint16(1 << 7)
	tflagCanMultiConn    = protocol.NEGOTIATION_REPLY_FLAGS_CAN_MULTI_CONN
	tflagSendCache       = uint16(1 << 10)
)

// Magics of the transmission phase.
const (
	magicRequest     = protocol.TRANSMISSION_MAGIC_REQUEST
	magicSimpleReply = protocol.TRANSMISSION_MAGIC_REPLY
	magicChunk       = uint32(0x668e33ef)

	requestSize     = 28
	simpleReplySize = 16
	chunkHeaderSize = 20
)

// Commands.
const (
	cmdRead        = protocol.TRANSMISSION_TYPE_REQUEST_READ
	cmdWrite       = protocol.TRANSMISSION_TYPE_REQUEST_WRITE
	cmdDisc        = protocol.TRANSMISSION_TYPE_REQUEST_DISC
	cmdFlush       = uint16(3)
	cmdTrim        = uint16(4)
	cmdCache       = uint16(5)
	cmdWriteZeroes = uint16(6)
	cmdBlockStatus = uint16(7)
)

// Command flags.
const (
	cmdFlagFUA      = uint16(1 << 0)
	cmdFlagNoHole   = uint16(1 << 1)
	cmdFlagDF       = uint16(1 << 2)
	cmdFlagReqOne   = uint16(1 << 3)
	cmdFlagFastZero = uint16(1 << 4)
)

// Structured reply flags and chunk types.
const (
	chunkFlagDone        = uint16(1 << 0)
	chunkNone            = uint16(0)
	chunkOffsetData      = uint16(1)
	chunkBlockStatus     = uint16(5)
	chunkError           = uint16(1<<15 | 1)
	offsetDataHeaderSize = 8 // offset before the data
	errorChunkHeaderSize = 6 // error + message length
	blockStatusDescSize  = 8 // length + flags
	blockStatusHeadSize  = 4 // context id
	maxStringLen         = 4096
)

// base:allocation status flags.
const (
	stateHole = uint32(1 << 0)
	stateZero = uint32(1 << 1)
)

// Error values of the transmission phase.
const (
	errnoPERM     = protocol.TRANSMISSION_ERROR_EPERM
	errnoIO       = uint32(5)
	errnoINVAL    = protocol.TRANSMISSION_ERROR_EINVAL
	errnoNOSPC    = uint32(28)
	errnoOVERFLOW = uint32(75)
)

// Metadata contexts.
const (
	metaBaseAlloc  = "base:allocation"
	metaBaseSpace  = "base:"   // LIST wildcard for the base namespace
	baseAllocCtxID = uint32(1) // id handed out for base:allocation by SET
)

// request is a decoded transmission request header.
type request struct {
	flags  uint16
	typ    uint16
	cookie uint64
	offset uint64
	length uint32
	// start is when the header was read, set only with Options.Observe.
	start time.Time
}

// parseRequest decodes a request header. It needs at least requestSize bytes
// and fails with errShortRequest or errBadRequestMagic; it never panics.
func parseRequest(b []byte) (request, error) {
	if len(b) < requestSize {
		return request{}, errShortRequest
	}
	if binary.BigEndian.Uint32(b[0:4]) != magicRequest {
		return request{}, errBadRequestMagic
	}
	return request{
		flags:  binary.BigEndian.Uint16(b[4:6]),
		typ:    binary.BigEndian.Uint16(b[6:8]),
		cookie: binary.BigEndian.Uint64(b[8:16]),
		offset: binary.BigEndian.Uint64(b[16:24]),
		length: binary.BigEndian.Uint32(b[24:28]),
	}, nil
}

// putRequest encodes r into b[:requestSize] (used by tests and seeds).
func putRequest(b []byte, r request) {
	binary.BigEndian.PutUint32(b[0:4], magicRequest)
	binary.BigEndian.PutUint16(b[4:6], r.flags)
	binary.BigEndian.PutUint16(b[6:8], r.typ)
	binary.BigEndian.PutUint64(b[8:16], r.cookie)
	binary.BigEndian.PutUint64(b[16:24], r.offset)
	binary.BigEndian.PutUint32(b[24:28], r.length)
}

// putSimpleReply encodes a simple reply header into b[:simpleReplySize].
func putSimpleReply(b []byte, errno uint32, cookie uint64) {
	binary.BigEndian.PutUint32(b[0:4], magicSimpleReply)
	binary.BigEndian.PutUint32(b[4:8], errno)
	binary.BigEndian.PutUint64(b[8:16], cookie)
}

// putChunkHeader encodes a structured reply chunk header into
// b[:chunkHeaderSize]; length counts the payload that follows.
func putChunkHeader(b []byte, flags, typ uint16, cookie uint64, length uint32) {
	binary.BigEndian.PutUint32(b[0:4], magicChunk)
	binary.BigEndian.PutUint16(b[4:6], flags)
	binary.BigEndian.PutUint16(b[6:8], typ)
	binary.BigEndian.PutUint64(b[8:16], cookie)
	binary.BigEndian.PutUint32(b[16:20], length)
}

// putOptReplyHeader encodes an option reply header into b[:optRepHeaderSize].
func putOptReplyHeader(b []byte, opt, typ, length uint32) {
	binary.BigEndian.PutUint64(b[0:8], magicOptRep)
	binary.BigEndian.PutUint32(b[8:12], opt)
	binary.BigEndian.PutUint32(b[12:16], typ)
	binary.BigEndian.PutUint32(b[16:20], length)
}

// putGreeting encodes the server's first message into b[:greetingSize].
func putGreeting(b []byte) {
	binary.BigEndian.PutUint64(b[0:8], magicNBD)
	binary.BigEndian.PutUint64(b[8:16], magicOption)
	binary.BigEndian.PutUint16(b[16:18], flagFixedNewstyle|flagNoZeroes)
}

// inRange reports whether [off, off+length) lies within an export of size
// bytes, without overflowing.
func inRange(off uint64, length uint32, size uint64) bool {
	return off <= size && uint64(length) <= size-off
}

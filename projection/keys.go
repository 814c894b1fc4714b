package projection

import (
	"encoding/binary"
)

// Key layout of the projection database (one Pebble database).
//
//	'a' | partition u32                              applied offset of the partition (u64 BE): next offset to apply
//	'q' | str(project) | str(queue)                  queueRecord
//	'm' | str(project) | str(queue) | 's' | seq u64  message header (model.go), in queue order
//	'm' | str(project) | str(queue) | 'b' | seq u64  message body (compact JSON)
//	'm' | str(project) | str(queue) | 'i' | id       seq u64 BE of message id
//	'm' | str(project) | str(queue) | 'c' | id       claimRecord
//	'x' | partition u32 | time u64 | kind | str(project) | str(queue) | ref
//	                                                 expiry index: kind 'm' (ref = seq u64) or 'c' (ref = claim id)
//	                                                 or 's' (ref = subscription id)
//	'o' | partition u32 | offset u64                 Outcome of the event at that position
//	's' | str(project) | str(queue) | id             Subscription
//	'u' | str(project) | str(queue) | subscriber     id of the subscription of that subscriber
//	'f' | partition u32 | offset u64                 follow-up event (msgpack envelope) of the event at
//	                                                 that position, not yet appended: the outbox
//	'w' | partition u32 | source partition u32       offset u64 of the last follow-up from the source
//	                                                 partition that this partition applied
//	'P' | name                                       Pool
//	'F' | name                                       Flavor
//	'L' | str(project) | str(queue)                  name of the pool the queue is placed on
//	'k' | str(project) | str(queue) | key            idempotencyRecord of an Idempotency-Key
//	'n' | partition u32 | str(project) | str(queue) | str(subscription id) | offset u64 | index u32
//	                                                 pending Delivery (deliveries.go)
//	'h' | str(project) | str(queue) | offset u64     time u64 | type of the queue's event there (history.go)
//	'R'                                              ReplayInfo (JSON) of a projection built by Rebuild
//
// str(s) escapes 0x00 as 0x00 0xFF and ends with 0x00 0x01, which keeps byte
// order equal to string order and makes every 'm' queue prefix end before
// any other queue's keys start, so a queue's data is one key range.
// Integers are big-endian so byte order is numeric order.
const (
	tagApplied  = 'a'
	tagQueue    = 'q'
	tagMsgs     = 'm'
	tagExpiry   = 'x'
	tagOutcome  = 'o'
	tagSub      = 's'
	tagSubUniq  = 'u'
	tagOutbox   = 'f'
	tagFollow   = 'w'
	tagPool     = 'P'
	tagFlavor   = 'F'
	tagPlace    = 'L'
	tagIdem     = 'k'
	tagDelivery = 'n'
	tagHistory  = 'h'
	tagReplay   = 'R'

	subSeq   = 's'
	subBody  = 'b'
	subID    = 'i'
	subClaim = 'c'

	kindMessage      = 'm'
	kindClaim        = 'c'
	kindSubscription = 's'
	kindIdempotency  = 'k'
)

func appendStr(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			b = append(b, 0, 0xff)
		} else {
			b = append(b, s[i])
		}
	}
	return append(b, 0, 1)
}

// readStr decodes one str() from b and returns it and the rest of b.
func readStr(b []byte) (string, []byte, bool) {
	var out []byte
	for i := 0; i+1 < len(b); i++ {
		if b[i] != 0 {
			continue
		}
		switch b[i+1] {
		case 1:
			out = append(out, b[:i]...)
			return string(out), b[i+2:], true
		case 0xff:
			out = append(out, b[:i+1]...)
			b = b[i+2:]
			i = -1
		default:
			return "", nil, false
		}
	}
	return "", nil, false
}

func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

func appliedKey(p int32) []byte { return appendU32([]byte{tagApplied}, uint32(p)) }

func queueKey(project, queue string) []byte {
	return appendStr(appendStr([]byte{tagQueue}, project), queue)
}

func projectQueuesPrefix(project string) []byte {
	return appendStr([]byte{tagQueue}, project)
}

// dataPrefix is the prefix of every key holding data of one queue.
func dataPrefix(project, queue string) []byte {
	b := make([]byte, 0, 1+len(project)+len(queue)+24)
	b = append(b, tagMsgs)
	b = appendStr(b, project)
	return appendStr(b, queue)
}

func msgKey(prefix []byte, seq uint64) []byte {
	b := append(append(make([]byte, 0, len(prefix)+9), prefix...), subSeq)
	return appendU64(b, seq)
}

func bodyKey(prefix []byte, seq uint64) []byte {
	b := append(append(make([]byte, 0, len(prefix)+9), prefix...), subBody)
	return appendU64(b, seq)
}

func idKey(prefix []byte, id string) []byte {
	b := append(append(make([]byte, 0, len(prefix)+1+len(id)), prefix...), subID)
	return append(b, id...)
}

func claimKey(prefix []byte, id string) []byte {
	b := append(append(make([]byte, 0, len(prefix)+1+len(id)), prefix...), subClaim)
	return append(b, id...)
}

func sub(prefix []byte, tag byte) []byte {
	return append(append(make([]byte, 0, len(prefix)+1), prefix...), tag)
}

func expiryKey(p int32, at int64, kind byte, prefix []byte, ref []byte) []byte {
	b := make([]byte, 0, 14+len(prefix)+len(ref))
	b = append(b, tagExpiry)
	b = appendU32(b, uint32(p))
	b = appendU64(b, uint64(max(at, 0)))
	b = append(b, kind)
	b = append(b, prefix[1:]...) // prefix without its 'm' tag
	return append(b, ref...)
}

func expiryPartition(p int32) []byte { return appendU32([]byte{tagExpiry}, uint32(p)) }

// expiryFrom is the smallest expiry key of partition p at time at or later.
func expiryFrom(p int32, at int64) []byte {
	return appendU64(expiryPartition(p), uint64(max(at, 0)))
}

func outcomeKey(p int32, off int64) []byte {
	return appendU64(appendU32([]byte{tagOutcome}, uint32(p)), uint64(off))
}

// subsPrefix is the prefix of the subscriptions of one queue. Queues keep
// their subscriptions when deleted, so these live outside the queue's 'm'
// range.
func subsPrefix(project, queue string) []byte {
	return appendStr(appendStr([]byte{tagSub}, project), queue)
}

func subKey(project, queue, id string) []byte {
	return append(subsPrefix(project, queue), id...)
}

func subUniqKey(project, queue, subscriber string) []byte {
	return append(appendStr(appendStr([]byte{tagSubUniq}, project), queue), subscriber...)
}

func outboxKey(p int32, off int64) []byte {
	return appendU64(appendU32([]byte{tagOutbox}, uint32(p)), uint64(off))
}

func outboxPartition(p int32) []byte { return appendU32([]byte{tagOutbox}, uint32(p)) }

func followKey(p, src int32) []byte {
	return appendU32(appendU32([]byte{tagFollow}, uint32(p)), uint32(src))
}

func idemKey(project, queue, key string) []byte {
	return append(appendStr(appendStr([]byte{tagIdem}, project), queue), key...)
}

func poolKey(name string) []byte   { return append([]byte{tagPool}, name...) }
func flavorKey(name string) []byte { return append([]byte{tagFlavor}, name...) }

func placementKey(project, queue string) []byte {
	return appendStr(appendStr([]byte{tagPlace}, project), queue)
}

// prefixEnd returns the smallest key greater than every key with prefix b.
func prefixEnd(b []byte) []byte {
	end := append([]byte(nil), b...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

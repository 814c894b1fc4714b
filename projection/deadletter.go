package projection

import (
	"github.com/cockroachdb/pebble/v2"

	hlog "github.com/heraldmq/herald/log"
)

// Dead-lettering: a claim that selects a message already claimed
// MaxClaimCount times moves it to the dead-letter queue instead. The
// source side (deadLetter) removes the message and writes a
// messages.dead_lettered follow-up event to the outbox; the target side
// (applyDeadLettered) appends the messages at the dead-letter queue's tail,
// unclaimed, keeping their ids and bodies, once per source position.

// deadLetterable reports whether a claim event moves m instead of
// claiming it.
func deadLetterable(pl *hlog.ClaimCreatedV1, m *Message) bool {
	return pl.DeadLetterQueue != "" && pl.MaxClaimCount > 0 && int64(m.ClaimCount) >= pl.MaxClaimCount
}

// deadLetter removes m from its queue and returns it as moved at now.
func (a *applier) deadLetter(b *pebble.Batch, prefix []byte, m *Message, pl *hlog.ClaimCreatedV1, now int64) (hlog.DeadLetter, error) {
	if err := loadBody(b, prefix, m); err != nil {
		return hlog.DeadLetter{}, err
	}
	dl := hlog.DeadLetter{ID: m.ID, Created: m.Created, TTL: m.TTL, Expires: m.Expires, Client: m.ClientID, Body: m.Body}
	if pl.DeadLetterTTL > 0 {
		dl.TTL, dl.Expires = pl.DeadLetterTTL, now+pl.DeadLetterTTL*1e9
	}
	return dl, a.removeMessage(b, prefix, m)
}

// sendDeadLetters writes the follow-up event carrying moved to the
// outbox of the claim event at offset off.
func (a *applier) sendDeadLetters(b *pebble.Batch, off int64, ev *hlog.Event, queue string, moved []hlog.DeadLetter) error {
	f, err := hlog.NewEvent(hlog.MessagesDeadLettered, ev.Project, queue, ev.Time,
		&hlog.MessagesDeadLetteredV1{SourcePartition: a.p, SourceOffset: off, Messages: moved})
	if err != nil {
		return err
	}
	f.Traceparent, f.Tracestate = ev.Traceparent, ev.Tracestate
	return a.writeOutbox(b, off, f)
}

func (a *applier) applyDeadLettered(b *pebble.Batch, ev *hlog.Event, pl *hlog.MessagesDeadLetteredV1) error {
	done, err := a.followed(b, pl.SourcePartition, pl.SourceOffset)
	if err != nil || done {
		return err
	}
	q, err := a.lazyQueue(b, ev)
	if err != nil {
		return err
	}
	prefix := dataPrefix(ev.Project, ev.Queue)
	for _, dl := range pl.Messages {
		if !ValidID(dl.ID) {
			continue
		}
		if exists, err := getMessageByID(b, prefix, dl.ID); err != nil || exists != nil {
			if err != nil {
				return err
			}
			continue
		}
		m := &Message{ID: dl.ID, Seq: q.NextSeq, Created: dl.Created, TTL: dl.TTL, Expires: dl.Expires, ClientID: dl.Client, Body: dl.Body}
		q.NextSeq++
		if err := a.insertMessage(b, prefix, m); err != nil {
			return err
		}
	}
	return a.putQueue(b, ev.Project, q)
}

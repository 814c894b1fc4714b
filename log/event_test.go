package log

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestEventRoundTrip(t *testing.T) {
	const now = int64(1_767_225_600_123_456_789)
	for _, tc := range []struct {
		typ     Type
		payload any // pointer to a payload struct, or nil
	}{
		{QueueCreated, &QueueCreatedV1{Metadata: []byte(`{"_ttl":300,"x":"ü"}`)}},
		{QueuePatched, &QueuePatchedV1{Ops: []PatchOp{{Op: "add", Key: "a", Value: []byte(`1`)}, {Op: "remove", Key: "b"}}}},
		{QueueDeleted, nil},
		{QueuePurged, &QueuePurgedV1{Messages: true}},
		{MessagesPosted, &MessagesPostedV1{Messages: []PostedMessage{{TTL: 300, Body: []byte(`{"event":"x"}`)}, {TTL: 60, Delay: 10, Body: []byte(`[1,2]`)}}}},
		{MessageDeleted, &MessageDeletedV1{ID: "0-12-3", ClaimID: "0-11-0"}},
		{MessagesDeleted, &MessagesDeletedV1{IDs: []string{"0-1-0", "0-1-1"}}},
		{MessagesPopped, &MessagesPoppedV1{Limit: 5}},
		{ClaimCreated, &ClaimCreatedV1{TTL: 30, Grace: 60, Limit: 10}},
		{ClaimRenewed, &ClaimRenewedV1{ClaimID: "0-11-0", TTL: 30, Grace: 5}},
		{ClaimReleased, &ClaimReleasedV1{ClaimID: "0-11-0"}},
	} {
		t.Run(string(tc.typ), func(t *testing.T) {
			ev, err := NewEvent(tc.typ, "tenant", "jobs", now, tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			ev.ClientID = "3381af92-2b9e-11e3-b191-71861300734c"
			ev.RequestID = "req-1"
			ev.Traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
			ev.Tracestate = "vendor=x"
			rec, err := ev.Record()
			if err != nil {
				t.Fatal(err)
			}
			if string(rec.Key) != "tenant/jobs" {
				t.Errorf("key %q", rec.Key)
			}
			for k, want := range map[string]string{
				HeaderType:        string(tc.typ),
				HeaderTraceparent: ev.Traceparent,
				HeaderTracestate:  ev.Tracestate,
			} {
				if got := rec.HeaderValue(k); string(got) != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}

			got, err := DecodeEvent(rec.Value)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, ev) {
				t.Fatalf("decoded %+v, want %+v", got, ev)
			}
			if got.Version != CurrentVersion || got.Time != now {
				t.Errorf("version %d time %d", got.Version, got.Time)
			}
			if tc.payload == nil {
				if len(got.Payload) != 0 {
					t.Errorf("payload %x for an event without one", got.Payload)
				}
				return
			}
			out := reflect.New(reflect.TypeOf(tc.payload).Elem()).Interface()
			if err := got.DecodePayload(out); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(out, tc.payload) {
				t.Fatalf("payload %+v, want %+v", out, tc.payload)
			}
		})
	}
}

func TestEventHeadersWithoutTrace(t *testing.T) {
	ev, err := NewEvent(QueueDeleted, "p", "q", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev.Tracestate = "orphan=1" // meaningless without a traceparent
	rec, err := ev.Record()
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Headers) != 1 || rec.Headers[0].Key != HeaderType || string(rec.Headers[0].Value) != string(QueueDeleted) {
		t.Fatalf("headers %q, want only the type", rec.Headers)
	}
}

func TestDecodeEventRejects(t *testing.T) {
	noType, _ := Marshal(&Event{Version: 1, Project: "p", Queue: "q"})
	noVersion, _ := Marshal(&Event{Type: QueueCreated, Project: "p", Queue: "q"})
	wrongShape, _ := Marshal(map[string]any{"t": 7, "v": "one"})
	for name, b := range map[string][]byte{
		"empty":      nil,
		"garbage":    []byte("not msgpack at all"),
		"truncated":  mustRecord(t).Value[:5],
		"no type":    noType,
		"no version": noVersion,
		"wrong type": wrongShape,
		"array":      {0x92, 0x01, 0x02},
	} {
		if ev, err := DecodeEvent(b); !errors.Is(err, ErrBadEvent) {
			t.Errorf("%s: DecodeEvent = %+v, %v; want ErrBadEvent", name, ev, err)
		}
	}

	ev := &Event{Type: ClaimCreated, Version: 1, Payload: []byte{0xa3, 'a', 'b', 'c'}} // a string, not a map
	if err := ev.DecodePayload(&ClaimCreatedV1{}); !errors.Is(err, ErrBadEvent) {
		t.Errorf("DecodePayload of a string into a struct = %v, want ErrBadEvent", err)
	}
}

func mustRecord(t testing.TB) *Record {
	ev, err := NewEvent(MessagesPosted, "tenant", "jobs", 42, &MessagesPostedV1{Messages: []PostedMessage{{TTL: 60, Body: []byte(`"hi"`)}}})
	if err != nil {
		t.Fatal(err)
	}
	ev.Traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	rec, err := ev.Record()
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// Projection digests hash encoded values, so equal values must encode to
// equal bytes whatever the insertion order of their maps, for every kind
// of map, not only the ones msgpack sorts itself.
func TestMarshalDeterministic(t *testing.T) {
	type withMaps struct {
		Counts map[string]int64
		ByID   map[int]string
		Nested map[string]map[string]bool
		Any    any
	}
	keys := make([]string, 40)
	for i := range keys {
		// Lengths vary so that string order and encoded-byte order differ.
		keys[i] = strings.Repeat("k", i%5+1) + fmt.Sprint((i*37)%40)
	}
	build := func(order []string) map[string]any {
		m := map[string]any{}
		w := withMaps{Counts: map[string]int64{}, ByID: map[int]string{}, Nested: map[string]map[string]bool{}, Any: map[string]float64{}}
		for _, k := range order {
			i := slices.Index(keys, k) // values depend on the key, not the order
			m[k] = map[string]int{k + "x": 1, k + "a": 2, k + "m": 3}
			w.Counts[k] = int64(i)
			w.ByID[len(k)*100+i] = k
			w.Nested[k] = map[string]bool{"z": true, k: false}
			w.Any.(map[string]float64)[k] = float64(i) / 3
		}
		m["typed"] = w
		m["plain"] = map[string]any{"b": "2", "a": []any{"x", map[string]any{"d": 1, "c": 2}}}
		return m
	}
	reversed := slices.Clone(keys)
	slices.Reverse(reversed)
	first, err := Marshal(build(keys))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		order := keys
		if i%2 == 1 {
			order = reversed
		}
		b, err := Marshal(build(order))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, first) {
			t.Fatalf("encoding %d differs from the first", i)
		}
	}

	var back struct {
		Typed withMaps `msgpack:"typed"`
	}
	if err := Unmarshal(first, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Typed.Counts) != 40 || back.Typed.ByID[len(keys[3])*100+3] != keys[3] || back.Typed.Nested[keys[5]]["z"] != true {
		t.Fatalf("round trip lost data: %+v", back.Typed)
	}
}

// Maps msgpack already sorts come out exactly as before: the canonical
// order of string keys is SetSortMapKeys's order.
func TestCanonicalKeepsSortedEncoding(t *testing.T) {
	m := map[string]any{"b": 1, "aa": 2, strings.Repeat("a", 40): 3, "": 4, "ü": map[string]any{"y": true, "x": nil}}
	b, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	c, err := canonicalMsgpack(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, c) {
		t.Fatalf("canonical form changed a sorted encoding:\n%x\n%x", b, c)
	}
	// An event holds no map msgpack leaves unsorted: its encoding is
	// msgpack's own, struct fields in declaration order.
	if holdsUnsortedMap(reflect.ValueOf(&Event{Payload: []byte{0x80}})) {
		t.Fatal("Event takes the canonical path")
	}
}

// Golden values from Kafka's UtilsTest.testMurmur2 (the Java client's
// Utils.murmur2, as a signed int).
func TestMurmur2KafkaVectors(t *testing.T) {
	for in, want := range map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		if got := int32(murmur2([]byte(in))); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
}

// PartitionFor agrees with franz-go's Kafka-compatible key partitioner,
// which is what any default Java or franz-go producer does for keyed records.
func TestPartitionForMatchesKafka(t *testing.T) {
	kp := kgo.StickyKeyPartitioner(nil).ForTopic("herald")
	keys := [][]byte{[]byte(""), []byte("foo"), []byte("bar"), []byte("tenant/queue"), {0xff, 0x00, 0x80}}
	for i := range 200 {
		keys = append(keys, fmt.Appendf(nil, "project-%d/queue-%d", i, i*7919))
	}
	for _, n := range []int32{1, 2, 3, 7, 16, 64, 1000} {
		for _, k := range keys {
			want := kp.Partition(&kgo.Record{Key: k}, int(n))
			if got := PartitionFor(k, n); int(got) != want {
				t.Fatalf("PartitionFor(%q, %d) = %d, kgo says %d", k, n, got, want)
			}
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add(mustRecord(f).Value)
	for _, typ := range []Type{QueueDeleted, ClaimReleased} {
		ev, _ := NewEvent(typ, "p", "q", 1, nil)
		b, _ := Marshal(ev)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xc0})
	f.Add([]byte{0x81, 0xa1, 'd', 0xdd, 0xff, 0xff, 0xff, 0xff}) // payload claiming a 4G-element array
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})                  // map claiming 4G entries
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := DecodeEvent(b)
		if err != nil {
			if !errors.Is(err, ErrBadEvent) {
				t.Fatalf("error %v is not ErrBadEvent", err)
			}
			return
		}
		if ev.Type == "" || ev.Version < 1 {
			t.Fatalf("accepted %+v", ev)
		}
		// Whatever decodes must re-encode, and decode to the same event.
		rec, err := ev.Record()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := DecodeEvent(rec.Value)
		if err != nil {
			t.Fatalf("decode of re-encoded: %v", err)
		}
		if !reflect.DeepEqual(again, ev) {
			t.Fatalf("re-encoded %+v, want %+v", again, ev)
		}
		// Payload decoding must not panic either.
		var p MessagesPostedV1
		_ = ev.DecodePayload(&p)
	})
}

package ws

import "testing"

// TestHeldFramesFollowTheNextAnswer: notifications pushed while requests
// run wait for the next answer, not for the connection's pipeline to
// empty, so a client that always has a post in flight still gets them
// and is not closed as a slow consumer.
func TestHeldFramesFollowTheNextAnswer(t *testing.T) {
	const queue = 4
	c := &conn{s: &Server{cfg: Config{SendQueue: queue}}, send: make(chan frame, queue), done: make(chan struct{})}
	c.begin()
	c.begin() // a second request pipelined behind the first
	for round := range 10 {
		for i := range queue - 1 {
			if !c.push(frame{data: []byte{byte(round), byte(i)}}) {
				t.Fatalf("round %d: push %d refused", round, i)
			}
		}
		if len(c.send) != 0 {
			t.Fatalf("round %d: %d frames went out before the answer", round, len(c.send))
		}
		c.send <- frame{data: []byte("answer")} // the answer loop sends an answer,
		c.end()                                 // then ends its request
		if got := len(c.send); got != queue {
			t.Fatalf("round %d: %d frames queued after the answer, want the answer and %d held", round, got, queue-1)
		}
		for range queue { // the writer sends them
			<-c.send
		}
		c.begin() // the client pipelines another request
	}
	select {
	case <-c.done:
		t.Fatalf("connection closed: %v", c.closeErr)
	default:
	}
}

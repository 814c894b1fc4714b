package notifier

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/heraldmq/herald/api"
)

// received is one mail an smtpServer accepted.
type received struct {
	From string   // envelope sender
	To   []string // envelope recipients
	User string   // authenticated user, if any
	Msg  *mail.Message
	Body []byte // decoded
}

func (r received) header(k string) string {
	v, err := new(mime.WordDecoder).DecodeHeader(r.Msg.Header.Get(k))
	if err != nil {
		return r.Msg.Header.Get(k)
	}
	return v
}

// smtpServer is an SMTP server on loopback (go-smtp) that keeps the mails
// it accepts.
type smtpServer struct {
	Host string
	Port int

	mu    sync.Mutex
	mails []received
	rcpts int // RCPT commands so far
	datas int // DATA commands so far
	// rejectRcpt and rejectData, when set, may refuse the n-th (from 0)
	// RCPT or DATA command with an *smtp.SMTPError.
	rejectRcpt func(n int) error
	rejectData func(n int) error
	// user and pass, when set, are required through AUTH CRAM-MD5.
	user, pass string
}

func newSMTPServer(t *testing.T, configure func(*smtpServer)) *smtpServer {
	t.Helper()
	s := &smtpServer{}
	if configure != nil {
		configure(s)
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &smtpSession{s: s}, nil
	}))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = waitLimit, waitLimit
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().(*net.TCPAddr)
	s.Host, s.Port = addr.IP.String(), addr.Port
	return s
}

// config is the notifier's MailConfig for this server, without TLS.
func (s *smtpServer) config(from string) MailConfig {
	return MailConfig{Host: s.Host, Port: s.Port, TLS: "none", From: from}
}

func (s *smtpServer) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mails)
}

func (s *smtpServer) describe() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := fmt.Sprintf("%d RCPT, %d DATA, %d mails:", s.rcpts, s.datas, len(s.mails))
	for _, m := range s.mails {
		out += fmt.Sprintf(" [%s → %v %q]", m.From, m.To, m.header(HeaderDelivery))
	}
	return out
}

type smtpSession struct {
	s    *smtpServer
	user string
	from string
	to   []string
}

func (ss *smtpSession) AuthMechanisms() []string {
	if ss.s.user == "" {
		return nil
	}
	return []string{"CRAM-MD5"}
}

func (ss *smtpSession) Auth(mech string) (sasl.Server, error) {
	if mech != "CRAM-MD5" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return &cramMD5Server{user: ss.s.user, pass: ss.s.pass, ok: func(u string) { ss.user = u }}, nil
}

func (ss *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.user != "" && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	n := ss.s.rcpts
	ss.s.rcpts++
	reject := ss.s.rejectRcpt
	ss.s.mu.Unlock()
	if reject != nil {
		if err := reject(n); err != nil {
			return err
		}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	n := ss.s.datas
	ss.s.datas++
	reject := ss.s.rejectData
	ss.s.mu.Unlock()
	if reject != nil {
		if err := reject(n); err != nil {
			return err
		}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return err
	}
	body, err := io.ReadAll(msg.Body)
	if err != nil {
		return err
	}
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		if body, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body))); err != nil {
			return err
		}
	}
	ss.s.mu.Lock()
	ss.s.mails = append(ss.s.mails, received{From: ss.from, To: slices.Clone(ss.to), User: ss.user, Msg: msg, Body: body})
	ss.s.mu.Unlock()
	return nil
}

func (ss *smtpSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *smtpSession) Logout() error { return nil }

// cramMD5Server is the server side of SASL CRAM-MD5 (RFC 2195).
type cramMD5Server struct {
	user, pass string
	challenge  []byte
	ok         func(user string)
}

func (c *cramMD5Server) Next(response []byte) ([]byte, bool, error) {
	if c.challenge == nil {
		c.challenge = []byte(fmt.Sprintf("<%d.test@localhost>", time.Now().UnixNano()))
		return c.challenge, false, nil
	}
	user, digest, _ := strings.Cut(string(response), " ")
	mac := hmac.New(md5.New, []byte(c.pass))
	mac.Write(c.challenge)
	if user != c.user || !hmac.Equal([]byte(digest), []byte(hex.EncodeToString(mac.Sum(nil)))) {
		return nil, true, errors.New("invalid credentials")
	}
	c.ok(user)
	return nil, true, nil
}

// waitMails waits until the subscription's status counts delivered
// deliveries and the server holds want mails.
func waitMails(t *testing.T, h *harness, s *smtpServer, queue, sub string, want int, delivered int64) []received {
	t.Helper()
	eventually(t, "mails", func() bool {
		return len(s.received()) >= want && h.status(queue, sub).Delivered == delivered
	}, func() string { return s.describe() + " status " + h.status(queue, sub).String() })
	return s.received()
}

// TestMailtoDeliversOneMailPerMessage checks a mailto subscription: one
// e-mail per message, To the URI's address, From options.from, Subject the
// URI's subject parameter, the JSON payload as body, and Herald's
// delivery headers.
func TestMailtoDeliversOneMailPerMessage(t *testing.T) {
	h := newHarness(t, api.Config{})
	s := newSMTPServer(t, nil)
	h.start(Config{Mail: s.config("herald@example.net")})
	sub := h.subscribe("q", "mailto:ops@example.com?subject=Hi", `{"from": "alerts@example.com", "subject": "not this one"}`)
	ids := h.post("q", `{"body": {"event": "BackupStarted"}, "ttl": 300}`, `{"body": "second"}`)
	mails := waitMails(t, h, s, "q", sub.ID, 2, 2)
	if len(mails) != 2 {
		t.Fatalf("%d mails for 2 messages: %s", len(mails), s.describe())
	}
	want := map[string]string{
		ids[0]: `{"ttl": 300, "body": {"event": "BackupStarted"}, "Message_Type": "Notification", "queue_name": "q"}`,
		ids[1]: `{"ttl": 3600, "body": "second", "Message_Type": "Notification", "queue_name": "q"}`,
	}
	for _, m := range mails {
		id := m.header(HeaderDelivery)
		payload, ok := want[id]
		if !ok {
			t.Fatalf("mail with %s %q", HeaderDelivery, id)
		}
		delete(want, id)
		if m.From != "alerts@example.com" || !slices.Equal(m.To, []string{"ops@example.com"}) {
			t.Errorf("envelope %s → %v", m.From, m.To)
		}
		for k, v := range map[string]string{"To": "<ops@example.com>", "From": "<alerts@example.com>",
			"Subject": "Hi", HeaderSubscription: sub.ID} {
			if got := m.header(k); got != v {
				t.Errorf("%s: %q, want %q", k, got, v)
			}
		}
		if !strings.HasPrefix(m.header("Content-Type"), "text/plain") {
			t.Errorf("Content-Type %q", m.header("Content-Type"))
		}
		if !strings.Contains(m.header("Message-Id"), id) {
			t.Errorf("Message-Id %q does not name delivery %s", m.header("Message-Id"), id)
		}
		if !jsonEqual(t, bytes.TrimSpace(m.Body), payload) {
			t.Errorf("body %q, want %s", m.Body, payload)
		}
	}
	if st := h.status("q", sub.ID); st.State != "active" || st.ConsecutiveFailures != 0 || st.Dropped != 0 {
		t.Errorf("status %s", st)
	}
}

// TestMailtoSubjectAndSender checks the other sources of Subject and
// From: options.subject when the URI has none, the configured sender when
// options have no from; and the URI's subject parameter whatever its case
// (Zaqar lowercases the parameters' names).
func TestMailtoSubjectAndSender(t *testing.T) {
	h := newHarness(t, api.Config{})
	s := newSMTPServer(t, nil)
	h.start(Config{Mail: s.config("herald@example.net")})
	cases := []struct {
		queue, subscriber, options string
		subject, from              string
	}{
		{"a", "mailto:dev@example.com", `{"subject": "From options"}`, "From options", "herald@example.net"},
		{"b", "mailto:dev@example.com?Subject=Capital", ``, "Capital", "herald@example.net"},
		{"c", "mailto:dev%40example.com?subject=Hello%20there", `{"from": "x@example.org"}`, "Hello there", "x@example.org"},
		{"d", "mailto:dev@example.com", ``, "", "herald@example.net"},
	}
	for _, c := range cases {
		sub := h.subscribe(c.queue, c.subscriber, c.options)
		ids := h.postBodies(c.queue, `1`)
		var got *received
		eventually(t, "mail for "+c.subscriber, func() bool {
			for _, m := range s.received() {
				if m.header(HeaderDelivery) == ids[0] {
					got = &m
				}
			}
			return got != nil && h.status(c.queue, sub.ID).Delivered == 1
		}, s.describe)
		if got.header("Subject") != c.subject || got.From != c.from || got.header("From") != "<"+c.from+">" {
			t.Errorf("%s %s: subject %q from %s (%q), want %q from %s", c.subscriber, c.options,
				got.header("Subject"), got.From, got.header("From"), c.subject, c.from)
		}
		if !slices.Equal(got.To, []string{"dev@example.com"}) {
			t.Errorf("%s: to %v", c.subscriber, got.To)
		}
	}
}

// TestMailtoTemporaryRejectionIsRetried checks that a 4xx answer of the
// relay (at DATA or RCPT) is retried and the mail then delivered once.
func TestMailtoTemporaryRejectionIsRetried(t *testing.T) {
	tempFail := &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
	for _, at := range []string{"DATA", "RCPT"} {
		t.Run(at, func(t *testing.T) {
			h := newHarness(t, api.Config{})
			reject := func(n int) error {
				if n < 2 {
					return tempFail
				}
				return nil
			}
			s := newSMTPServer(t, func(s *smtpServer) {
				if at == "DATA" {
					s.rejectData = reject
				} else {
					s.rejectRcpt = reject
				}
			})
			h.start(Config{Mail: s.config("herald@example.net")})
			sub := h.subscribe("q", "mailto:ops@example.com", "")
			ids := h.postBodies("q", `1`)
			mails := waitMails(t, h, s, "q", sub.ID, 1, 1)
			if len(mails) != 1 || mails[0].header(HeaderDelivery) != ids[0] {
				t.Fatalf("want one mail for %s: %s", ids[0], s.describe())
			}
			st := h.status("q", sub.ID)
			if st.LastError == nil || !strings.Contains(*st.LastError, "451") || st.ConsecutiveFailures != 0 || st.Dropped != 0 {
				t.Errorf("status %s", st)
			}
		})
	}
}

// TestMailtoPermanentRejectionIsDropped checks that a 5xx answer of the
// relay refuses the mail for good (dropped, not retried), and that the
// next mail goes through.
func TestMailtoPermanentRejectionIsDropped(t *testing.T) {
	h := newHarness(t, api.Config{})
	s := newSMTPServer(t, func(s *smtpServer) {
		s.rejectRcpt = func(n int) error {
			if n == 0 {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
			}
			return nil
		}
	})
	h.start(Config{Mail: s.config("herald@example.net"), Concurrency: 1})
	sub := h.subscribe("q", "mailto:ops@example.com", "")
	ids := h.postBodies("q", `1`, `2`)
	eventually(t, "one dropped, one delivered", func() bool {
		st := h.status("q", sub.ID)
		return st.Dropped == 1 && st.Delivered == 1
	}, func() string { return s.describe() + " " + h.status("q", sub.ID).String() })
	mails := s.received()
	if len(mails) != 1 || mails[0].header(HeaderDelivery) != ids[1] {
		t.Fatalf("want the second message only: %s", s.describe())
	}
	s.mu.Lock()
	rcpts := s.rcpts
	s.mu.Unlock()
	if rcpts != 2 {
		t.Errorf("%d RCPT commands, want 2 (no retry of the refused one)", rcpts)
	}
}

// TestMailtoAuthenticates checks SMTP authentication without TLS: the
// relay offers CRAM-MD5, which the notifier uses with MailConfig's
// credentials; with a wrong password nothing is sent and the failure
// shows in the status.
func TestMailtoAuthenticates(t *testing.T) {
	h := newHarness(t, api.Config{})
	s := newSMTPServer(t, func(s *smtpServer) { s.user, s.pass = "herald", "s3cret" })
	mc := s.config("herald@example.net")
	mc.Username, mc.Password = "herald", "s3cret"
	h.start(Config{Mail: mc})
	sub := h.subscribe("q", "mailto:ops@example.com", "")
	h.postBodies("q", `1`)
	mails := waitMails(t, h, s, "q", sub.ID, 1, 1)
	if mails[0].User != "herald" {
		t.Errorf("mail accepted for user %q", mails[0].User)
	}

	h2 := newHarness(t, api.Config{})
	mc.Password = "wrong"
	h2.start(Config{Mail: mc})
	sub2 := h2.subscribe("q", "mailto:ops@example.com", "")
	h2.postBodies("q", `1`)
	eventually(t, "the schedule to run out", func() bool { return h2.status("q", sub2.ID).State == "suspended" },
		func() string { return h2.status("q", sub2.ID).String() })
	if st := h2.status("q", sub2.ID); st.Delivered != 0 || st.LastError == nil {
		t.Errorf("status %s", st)
	}
	if n := len(s.received()); n != 1 {
		t.Errorf("%d mails, want only the first notifier's", n)
	}
}

// TestMailtoWithoutRelayIsRetried checks that mailto deliveries without a
// configured relay fail — retried, then suspended, never lost — saying
// why.
func TestMailtoWithoutRelayIsRetried(t *testing.T) {
	h := newHarness(t, api.Config{})
	h.start(Config{})
	sub := h.subscribe("q", "mailto:ops@example.com", "")
	h.postBodies("q", `1`)
	eventually(t, "suspension", func() bool { return h.status("q", sub.ID).State == "suspended" }, nil)
	st := h.status("q", sub.ID)
	if st.LastError == nil || !strings.Contains(*st.LastError, "no SMTP relay") || st.Dropped != 0 {
		t.Errorf("status %s", st)
	}
}

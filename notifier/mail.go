package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	gomail "github.com/wneessen/go-mail"

	"github.com/heraldmq/herald/projection"
)

// MailConfig is the SMTP relay mailto subscriptions are delivered
// through.
type MailConfig struct {
	Host string // empty: mailto deliveries fail (and are retried) until configured
	Port int    // 0: 25, or 465 with TLS "tls"
	// TLS is "starttls" (required), "tls" (implicit TLS) or "none".
	TLS      string
	Username string // empty: no authentication
	Password string
	From     string // default sender; options.from overrides it
}

// mail sends payload as one e-mail to a mailto subscriber (contract
// §3.10.3): To the address, From options.from (or the configured sender),
// Subject the URI's subject parameter or options.subject.
func (n *Notifier) mail(ctx context.Context, sub *projection.Subscription, deliveryID string, d *projection.Delivery, doc map[string]any, payload []byte) (result, error) {
	mc := n.cfg.Mail
	if mc.Host == "" {
		return retry, errors.New("no SMTP relay configured (--smtp-host)")
	}
	u, err := url.Parse(sub.Subscriber)
	if err != nil || u.Opaque == "" {
		return refused, fmt.Errorf("bad mailto URI %q", sub.Subscriber)
	}
	to, err := url.PathUnescape(u.Opaque)
	if err != nil {
		return refused, fmt.Errorf("bad mailto URI %q", sub.Subscriber)
	}
	var opts struct {
		From    string `json:"from"`
		Subject string `json:"subject"`
	}
	json.Unmarshal(sub.Options, &opts) // options are a JSON object; other keys' types do not matter
	subject := uriHeader(u.Query(), "subject")
	if subject == "" {
		subject = opts.Subject
	}
	body := string(payload)
	switch d.Kind {
	case projection.DeliverConfirmation, projection.DeliverUnsubscribed:
		if subject == "" {
			subject = "Confirm your subscription"
			if d.Kind == projection.DeliverUnsubscribed {
				subject = "You have unsubscribed"
			}
		}
		if link := n.confirmationLink(doc); link != "" {
			body = "To confirm the subscription, open:\n\n" + link + "\n"
		}
	}
	from := opts.From
	if from == "" {
		from = mc.From
	}
	m := gomail.NewMsg()
	if err := m.From(from); err != nil {
		return refused, fmt.Errorf("bad sender %q: %v", from, err)
	}
	if err := m.To(strings.Split(to, ",")...); err != nil {
		return refused, fmt.Errorf("bad recipient %q: %v", to, err)
	}
	m.Subject(subject)
	m.SetDate()
	m.SetMessageIDWithValue(strings.ReplaceAll(deliveryID, "/", ".") + "@herald")
	m.SetGenHeader(HeaderSubscription, sub.ID)
	m.SetGenHeader(HeaderDelivery, deliveryID)
	m.SetBodyString(gomail.TypeTextPlain, body)

	opt := []gomail.Option{gomail.WithTimeout(n.cfg.Timeout)}
	port := mc.Port
	switch mc.TLS {
	case "tls":
		opt = append(opt, gomail.WithSSL())
		if port == 0 {
			port = 465
		}
	case "none":
		opt = append(opt, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opt = append(opt, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if port == 0 {
		port = 25
	}
	opt = append(opt, gomail.WithPort(port))
	if mc.Username != "" {
		opt = append(opt, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(mc.Username), gomail.WithPassword(mc.Password))
	}
	c, err := gomail.NewClient(mc.Host, opt...)
	if err != nil {
		return retry, err
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		var se *gomail.SendError
		if errors.As(err, &se) && !se.IsTemp() && se.ErrorCode() >= 500 {
			return refused, err // the relay refused it for good (5xx)
		}
		return retry, err
	}
	return ok, nil
}

// uriHeader returns the value of a mailto URI's header field (RFC 6068):
// field names are case-insensitive, as Zaqar reads them (it lowercases
// the parameters' names).
func uriHeader(q url.Values, name string) string {
	if v, ok := q[name]; ok && len(v) > 0 {
		return v[0]
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if strings.EqualFold(k, name) && len(q[k]) > 0 {
			return q[k][0]
		}
	}
	return ""
}

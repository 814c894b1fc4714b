package notifier

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/heraldmq/herald/projection"
)

// Headers of every webhook request, beyond Zaqar (receivers that ignore
// them are unaffected):
//
//	X-Herald-Subscription  the subscription id
//	X-Herald-Delivery      a stable id of this delivery: the same on every
//	                       retry and redelivery, so receivers can drop
//	                       duplicates (for a notification, the message id)
//	X-Herald-Timestamp     Unix seconds when this attempt was signed
//	X-Herald-Signature     "v1=" + lowercase hex HMAC-SHA256, keyed with
//	                       the subscription's signing secret, of
//	                       timestamp + "." + the raw request body
//
// A receiver recomputes the signature, compares it in constant time and
// refuses timestamps too far from its clock (replays).
const (
	HeaderSubscription = "X-Herald-Subscription"
	HeaderDelivery     = "X-Herald-Delivery"
	HeaderTimestamp    = "X-Herald-Timestamp"
	HeaderSignature    = "X-Herald-Signature"
)

// Signature returns the X-Herald-Signature value of body signed at
// timestamp (Unix seconds) with secret.
func Signature(secret string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether signature is the signature of body at timestamp
// under secret; receivers in Go can use it as is.
func Verify(secret string, timestamp int64, body []byte, signature string) bool {
	return hmac.Equal([]byte(Signature(secret, timestamp, body)), []byte(signature))
}

// webhook POSTs payload to the subscription's URL (contract §3.10.3):
// Content-Type application/json, then options.post_headers, the body
// being options.post_data with "$zaqar_message$" (quotes included)
// replaced by the payload when post_data is a string.
func (n *Notifier) webhook(ctx context.Context, sub *projection.Subscription, deliveryID string, payload []byte) (result, error) {
	// Options are a JSON object, but of any content: read the two keys
	// apart so that one of another type leaves the other usable.
	var raw map[string]json.RawMessage
	json.Unmarshal(sub.Options, &raw)
	body := payload
	var postData string
	if json.Unmarshal(raw["post_data"], &postData) == nil {
		body = []byte(strings.ReplaceAll(postData, `"$zaqar_message$"`, string(payload)))
	}
	var postHeaders map[string]any
	json.Unmarshal(raw["post_headers"], &postHeaders)
	url := strings.TrimPrefix(sub.Subscriber, "trust+")
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return refused, fmt.Errorf("bad subscriber URL: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", n.userAgent)
	for k, v := range postHeaders {
		if s, ok := v.(string); ok {
			req.Header.Set(k, s)
		} else {
			req.Header.Set(k, fmt.Sprint(v))
		}
	}
	ts := n.cfg.Clock.Now().Unix()
	req.Header.Set(HeaderSubscription, sub.ID)
	req.Header.Set(HeaderDelivery, deliveryID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	if sub.Secret != "" {
		req.Header.Set(HeaderSignature, Signature(sub.Secret, ts, body))
	}
	resp, err := n.http.Do(req)
	if err != nil {
		return retry, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c < 400:
		return ok, nil
	case c >= 500 || c == http.StatusRequestTimeout || c == http.StatusTooManyRequests:
		return retry, fmt.Errorf("HTTP %d", c)
	default:
		return refused, fmt.Errorf("HTTP %d", c)
	}
}

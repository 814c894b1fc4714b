package log

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// A log URI names a log backend, as pools do:
//
//	pebble:///var/lib/herald/pool-a   an embedded Pebble log in that directory
//	kafka://host:9092,host2:9092/topic  a topic of a Kafka-compatible cluster
//
// Both open with the partition count of the node.

// ParseURI checks the shape of a log URI and returns its scheme.
func ParseURI(uri string) (scheme string, err error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("log: bad URI %q: %w", uri, err)
	}
	switch u.Scheme {
	case "pebble":
		if u.Path == "" || u.Host != "" {
			return "", fmt.Errorf("log: pebble URI %q needs an absolute directory: pebble:///dir", uri)
		}
	case "kafka":
		if u.Host == "" || strings.Trim(u.Path, "/") == "" {
			return "", fmt.Errorf("log: kafka URI %q needs brokers and a topic: kafka://host:port/topic", uri)
		}
	default:
		return "", fmt.Errorf("log: unsupported URI scheme in %q (pebble or kafka)", uri)
	}
	return u.Scheme, nil
}

// NormalizeURI returns the canonical spelling of a valid log URI (a
// cleaned directory), so two spellings of one log compare equal.
func NormalizeURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "pebble" {
		return uri
	}
	return "pebble://" + filepath.Clean(u.Path)
}

// OpenURI opens the log a URI names.
func OpenURI(ctx context.Context, uri string, partitions int32, logger *slog.Logger) (Log, error) {
	scheme, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(uri)
	if scheme == "pebble" {
		if err := os.MkdirAll(u.Path, 0o755); err != nil {
			return nil, err
		}
		return OpenPebble(PebbleOptions{Dir: u.Path, Partitions: partitions, Logger: logger})
	}
	return OpenKafka(ctx, KafkaOptions{Brokers: strings.Split(u.Host, ","), Topic: strings.Trim(u.Path, "/"), Partitions: partitions})
}

// CheckURI reports whether the log a URI names is reachable: a Pebble
// directory that can be created, or a Kafka broker that accepts a
// connection.
func CheckURI(ctx context.Context, uri string) error {
	scheme, err := ParseURI(uri)
	if err != nil {
		return err
	}
	u, _ := url.Parse(uri)
	if scheme == "pebble" {
		return os.MkdirAll(u.Path, 0o755)
	}
	var d net.Dialer
	var last error
	for _, b := range strings.Split(u.Host, ",") {
		dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		c, err := d.DialContext(dctx, "tcp", b)
		cancel()
		if err == nil {
			return c.Close()
		}
		last = err
	}
	return last
}

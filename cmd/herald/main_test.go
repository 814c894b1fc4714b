package main

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

// TestFlagsFromEnvironment: every flag can come from HERALD_<FLAG>, and a
// flag on the command line wins over the environment.
func TestFlagsFromEnvironment(t *testing.T) {
	newFlags := func() (*flag.FlagSet, *string, *int64) {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(&bytes.Buffer{})
		return fs, fs.String("listen", "127.0.0.1:8888", ""), fs.Int64("default-message-ttl", 3600, "")
	}
	t.Setenv("HERALD_LISTEN", "127.0.0.1:9999")
	t.Setenv("HERALD_DEFAULT_MESSAGE_TTL", "120")

	fs, listen, ttl := newFlags()
	if err := parseWithEnv(fs, nil); err != nil {
		t.Fatal(err)
	}
	if *listen != "127.0.0.1:9999" || *ttl != 120 {
		t.Fatalf("from the environment: listen %q ttl %d", *listen, *ttl)
	}

	fs, listen, _ = newFlags()
	if err := parseWithEnv(fs, []string{"--listen", "127.0.0.1:7777"}); err != nil {
		t.Fatal(err)
	}
	if *listen != "127.0.0.1:7777" {
		t.Fatalf("the command line did not win: %q", *listen)
	}

	t.Setenv("HERALD_DEFAULT_MESSAGE_TTL", "soon")
	fs, _, _ = newFlags()
	if err := parseWithEnv(fs, nil); err == nil || !strings.Contains(err.Error(), "HERALD_DEFAULT_MESSAGE_TTL") {
		t.Fatalf("a bad environment value was accepted: %v", err)
	}
}

// TestHelpNamesTheEnvironment: serve --help lists each flag's variable.
func TestHelpNamesTheEnvironment(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"serve", "--help"}, &out, &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"--data (HERALD_DATA)", "--brokers (HERALD_BROKERS)", "--otlp-endpoint (HERALD_OTLP_ENDPOINT)",
		"--signed-url-key (HERALD_SIGNED_URL_KEY)", "--cors-allowed-origins (HERALD_CORS_ALLOWED_ORIGINS)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
	out.Reset()
	if code := run([]string{"frobnicate"}, &out, &out); code != 2 {
		t.Errorf("unknown command: exit %d", code)
	}
}

// Command ceiling is a loopback HTTP server that answers the two Zaqar v2
// requests a producer-only `herald bench` sends, doing nothing else, so
//
//	herald bench --target rest --url http://127.0.0.1:8899 --producers N --consumers 0 --verify=false
//
// measures the ceiling of HTTP on loopback (bench client and net/http
// server) that Herald's figures can be compared with.
//
//	PUT  /v2/queues/{q}           201, empty body
//	POST /v2/queues/{q}/messages  201, {"resources": [one href per posted message]}
//	DELETE /v2/queues/{q}         204 (so --clean works)
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"strings"
	"sync/atomic"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8899", "listen address (host:port)")
	flag.Parse()
	var next atomic.Uint64
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v2/queues/{q}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "/v2/queues/"+r.PathValue("q"))
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("DELETE /v2/queues/{q}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v2/queues/{q}/messages", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Messages []json.RawMessage `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Messages) == 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"title": "Invalid request body", "description": "No messages were found in the request body."}`)
			return
		}
		q := r.PathValue("q")
		ids := make([]string, len(body.Messages))
		hrefs := make([]string, len(body.Messages))
		for i := range ids {
			ids[i] = fmt.Sprintf("%024x", next.Add(1))
			hrefs[i] = "/v2/queues/" + q + "/messages/" + ids[i]
		}
		out, _ := json.Marshal(map[string][]string{"resources": hrefs})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", "/v2/queues/"+q+"/messages?ids="+strings.Join(ids, ","))
		w.WriteHeader(http.StatusCreated)
		w.Write(out)
	})
	log.Printf("ceiling: listening on %s", *listen)
	log.Fatal(http.ListenAndServe(*listen, mux))
}

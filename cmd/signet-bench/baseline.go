package main

import (
	"flag"
	"net/http"
	"strings"
)

// baselineBody is the fixed 300-byte JSON the baseline answers with, about the size of an
// introspection response.
var baselineBody = func() []byte {
	b := `{"active":true,"client_id":"baseline-client","token_type":"Bearer","scope":"read write","sub":"baseline-subject","aud":["baseline-api"],"iss":"http://127.0.0.1","jti":"0123456789abcdef0123456789abcdef","exp":1767225600,"iat":1767222000,"nbf":1767222000,"pad":"`
	b += strings.Repeat("x", 300-len(b)-2) + `"}`
	return []byte(b)
}()

// runBaseline serves the ceiling: a bare net/http handler that parses the form and returns a fixed
// JSON body. Whatever Signet does beyond that is its cost.
func runBaseline(args []string) error {
	fs := flag.NewFlagSet("baseline-server", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ready\n")) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(baselineBody)
	})
	return http.ListenAndServe(*addr, mux)
}

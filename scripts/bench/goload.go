// The supervised-Go row of make bench: N GET requests, one after another,
// on one keep-alive connection; prints the rate in requests per second.
// Built with CGO_ENABLED=0, so it never loads the shim.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	url := os.Args[1]
	n, _ := strconv.Atoi(os.Args[2])
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	get := func() {
		resp, err := client.Get(url)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get()
	start := time.Now()
	for i := 0; i < n; i++ {
		get()
	}
	fmt.Printf("%.0f\n", float64(n)/time.Since(start).Seconds())
}

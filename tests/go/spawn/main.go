// Runs curl and busybox wget as children against the URL it is given and
// prints what each printed: children of a Go program are supervised too.
package main

import (
	"fmt"
	"os"
	"os/exec"
)

func main() {
	url := os.Args[1]
	for _, argv := range [][]string{{"curl", "-s", url}, {"busybox", "wget", "-q", "-O", "-", url}} {
		out, err := exec.Command(argv[0], argv[1:]...).Output()
		if err != nil {
			fmt.Fprintln(os.Stderr, argv[0], err)
			os.Exit(1)
		}
		fmt.Printf("%s: %s\n", argv[0], out)
	}
}

// Package assertstream reads assertion streams with snapd's stream decoder,
// shared by the conformance programs. They build in GOPATH mode from outside
// GOPATH, so they import it by its relative path "../assertstream".
package assertstream

import (
	"io"
	"os"

	"github.com/snapcore/snapd/asserts"
)

// Decode decodes a whole stream with snapd's stream decoder (which, unlike
// asserts.Decode, trusts body-length and requires blank lines between
// assertions). It returns what it decoded before any error.
func Decode(r io.Reader) ([]asserts.Assertion, error) {
	dec := asserts.NewDecoder(r)
	var out []asserts.Assertion
	for {
		a, err := dec.Decode()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, a)
	}
}

// ReadFile decodes the stream in the file at path (see Decode).
func ReadFile(path string) ([]asserts.Assertion, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Decode(f)
}

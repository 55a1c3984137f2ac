// Command snapyaml asks snapd 2.57.6 what it makes of snap.yaml documents.
//
// Input on stdin: a JSON array of strings, each the text of a meta/snap.yaml.
// Output: one JSON object per document, in order, on its own line:
//
//	{"ok": true, "name": "...", "version": "...", "type": "app", "base": "...",
//	 "confinement": "strict", "epoch": "1*", "architectures": ["all"], "provenance": "..."}
//	{"ok": false, "error": "invalid snap version \"\": ..."}
//
// A document is accepted when snap.InfoFromSnapYaml parses it and
// snap.Validate finds nothing wrong: what snapd itself runs on a snap file
// before installing it (snap.ReadInfoFromSnapFile). Interfaces are not
// sanitized (no interface repository here), so plug and slot attributes are
// not judged.
//
// Build (GOPATH mode; see conformance/README.md):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode CGO_ENABLED=0 \
//	    go build -tags nosecboot -o OUT ./conformance/snapyaml
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/snapcore/snapd/snap"
)

type verdict struct {
	OK            bool     `json:"ok"`
	Error         string   `json:"error,omitempty"`
	Name          string   `json:"name,omitempty"`
	Version       string   `json:"version,omitempty"`
	Type          string   `json:"type,omitempty"`
	Base          string   `json:"base,omitempty"`
	Confinement   string   `json:"confinement,omitempty"`
	Epoch         string   `json:"epoch,omitempty"`
	Architectures []string `json:"architectures,omitempty"`
	Provenance    string   `json:"provenance,omitempty"`
}

func judge(text string) (v verdict) {
	defer func() {
		if r := recover(); r != nil {
			v = verdict{OK: false, Error: fmt.Sprintf("panic: %v", r)}
		}
	}()
	info, err := snap.InfoFromSnapYaml([]byte(text))
	if err == nil {
		err = snap.Validate(info)
	}
	if err != nil {
		return verdict{OK: false, Error: err.Error()}
	}
	return verdict{
		OK:            true,
		Name:          info.SnapName(),
		Version:       info.Version,
		Type:          string(info.Type()),
		Base:          info.Base,
		Confinement:   string(info.Confinement),
		Epoch:         info.Epoch.String(),
		Architectures: info.Architectures,
		Provenance:    info.SnapProvenance,
	}
}

func main() {
	snap.MockSanitizePlugsSlots(func(*snap.Info) {})
	var texts []string
	if err := json.NewDecoder(os.Stdin).Decode(&texts); err != nil {
		fmt.Fprintf(os.Stderr, "snapyaml: cannot read the JSON array of documents: %v\n", err)
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	for _, text := range texts {
		if err := out.Encode(judge(text)); err != nil {
			fmt.Fprintf(os.Stderr, "snapyaml: %v\n", err)
			os.Exit(2)
		}
	}
}

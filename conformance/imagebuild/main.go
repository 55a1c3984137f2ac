// Command imagebuild prepares a Ubuntu Core image from a store with snapd's
// own image builder (snapd 2.57.6's "image" package, the code behind
// `snap prepare-image` and ubuntu-image), trusting only the deployment's
// root, then opens the seed it wrote with snapd's seed loader (what a
// device runs at first boot) and reports what it found.
//
// The store is chosen as for `snap prepare-image`: UBUNTU_STORE_URL (and
// SNAPPY_FORCE_API_URL for assertions), credentials from UBUNTU_STORE_AUTH.
// The trusted set is replaced with image.MockTrusted: sysdb.InjectTrusted
// does not reach the image builder, which copies its trusted set at start.
//
// Build (GOPATH mode; see conformance/README.md):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode CGO_ENABLED=0 \
//	    go build -tags nosecboot -o OUT ./conformance/imagebuild
//
// Use:
//
//	imagebuild -trusted ROOT -model MODEL -dir PREPAREDIR
//
// It prints one JSON object; exit status 0 when the image was prepared and
// its seed loads and verifies, 1 otherwise, 2 for usage errors.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/snapcore/snapd/asserts"
	"github.com/snapcore/snapd/image"
	"github.com/snapcore/snapd/seed"
	"github.com/snapcore/snapd/snap"
	"github.com/snapcore/snapd/timings"

	"../assertstream"
)

type seedSnap struct {
	Name      string `json:"name"`
	SnapID    string `json:"snap-id"`
	Revision  int    `json:"revision"`
	Path      string `json:"path"`
	Essential bool   `json:"essential"`
	Channel   string `json:"channel"`
}

type result struct {
	OK    bool   `json:"ok"`
	Stage string `json:"stage"`
	Error string `json:"error"`
	Label string `json:"label"`
	// Snaps of the seed as the seed loader sees them (assertions verified).
	Snaps []seedSnap `json:"snaps"`
	// Assertions committed from the seed into a database trusting the root.
	Assertions map[string]int `json:"assertions"`
}

func main() {
	trustedPath := flag.String("trusted", "", "root account + account-key stream")
	modelPath := flag.String("model", "", "the signed model")
	dir := flag.String("dir", "", "prepare directory (empty or missing)")
	flag.Parse()
	if *trustedPath == "" || *modelPath == "" || *dir == "" {
		fmt.Fprintln(os.Stderr, "imagebuild: -trusted, -model and -dir are required")
		os.Exit(2)
	}
	trusted, err := assertstream.ReadFile(*trustedPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "imagebuild: %v\n", err)
		os.Exit(2)
	}
	res := build(trusted, *modelPath, *dir)
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(res)
	if !res.OK {
		os.Exit(1)
	}
}

func build(trusted []asserts.Assertion, modelPath, dir string) *result {
	res := &result{Stage: "prepare", Assertions: map[string]int{}, Snaps: []seedSnap{}}
	// the builder's progress lines go to stderr: stdout carries only the JSON result
	image.Stdout = os.Stderr
	restoreTrusted := image.MockTrusted(trusted)
	defer restoreTrusted()
	restoreSanitize := snap.MockSanitizePlugsSlots(func(*snap.Info) {})
	defer restoreSanitize()

	opts := &image.Options{
		ModelFile:      modelPath,
		PrepareDir:     dir,
		Customizations: image.Customizations{Validation: "ignore"},
	}
	if err := image.Prepare(opts); err != nil {
		res.Error = err.Error()
		return res
	}

	res.Stage = "seed"
	seedDir := filepath.Join(dir, "system-seed")
	systems, _ := filepath.Glob(filepath.Join(seedDir, "systems", "*"))
	if len(systems) != 1 {
		res.Error = fmt.Sprintf("expected one recovery system, found %d", len(systems))
		return res
	}
	res.Label = filepath.Base(systems[0])
	sd, err := seed.Open(seedDir, res.Label)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	db, err := asserts.OpenDatabase(&asserts.DatabaseConfig{
		Backstore: asserts.NewMemoryBackstore(), Trusted: trusted,
	})
	if err != nil {
		res.Error = err.Error()
		return res
	}
	commitTo := func(b *asserts.Batch) error {
		return b.CommitToAndObserve(db, func(a asserts.Assertion) {
			res.Assertions[a.Type().Name]++
		}, nil)
	}
	if err := sd.LoadAssertions(db, commitTo); err != nil {
		res.Error = "loading the seed's assertions: " + err.Error()
		return res
	}
	if err := sd.LoadMeta(seed.AllModes, nil, timings.New(nil)); err != nil {
		res.Error = "loading the seed's snaps: " + err.Error()
		return res
	}
	err = sd.Iter(func(sn *seed.Snap) error {
		s := seedSnap{Path: sn.Path, Essential: sn.Essential, Channel: sn.Channel}
		if sn.SideInfo != nil {
			s.Name = sn.SideInfo.RealName
			s.SnapID = sn.SideInfo.SnapID
			s.Revision = sn.SideInfo.Revision.N
		}
		res.Snaps = append(res.Snaps, s)
		return nil
	})
	if err != nil {
		res.Error = err.Error()
		return res
	}
	sort.Slice(res.Snaps, func(i, j int) bool { return res.Snaps[i].Name < res.Snaps[j].Name })
	res.Stage = "done"
	res.OK = true
	return res
}

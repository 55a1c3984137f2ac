// Command storeclient is a registered device talking to a store with snapd's
// own store client (snapd 2.57.6's "store" package), trusting only the
// deployment's root.
//
// The device's identity (serial assertion, model and device key, e.g. from
// conformance/devicereg) is loaded from files; a DeviceAndAuthContext hands
// snapd's store client what the device manager would: the serial, the model,
// a device-session-request signed with the device key for every nonce, and a
// place to keep the session. snapd's client then obtains and renews the
// device session itself (api/v1/snaps/auth/nonces, .../sessions).
//
// Steps come as JSON on stdin, and every step's outcome is one JSON object in
// the output:
//
//	{"steps": [
//	  {"op": "install",  "name": "hello", "channel": "stable"},
//	  {"op": "download", "name": "hello", "revision": 2},
//	  {"op": "refresh",  "snap-id": "...", "name": "hello", "revision": 1,
//	   "channel": "latest/stable"},
//	  {"op": "info", "name": "hello"},
//	  {"op": "find", "query": "hel"},
//	  {"op": "declarations", "snap-ids": ["..."]}
//	]}
//
// install, download and refresh do what snapd does for a snap: snap action,
// download (sha3-384 checked by the client), then fetch the snap-revision
// and its prerequisites (snap-declaration, accounts, account-keys) and the
// store assertion (not-found tolerated) into a snapd asserts.Database that
// trusts only the root, and cross-check the file against them
// (snapasserts.CrossCheck). declarations refreshes snap-declarations through
// snap action's fetch-assertions and adds the streams to the database.
//
// Build (GOPATH mode; see conformance/README.md):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode CGO_ENABLED=0 \
//	    go build -tags nosecboot -o OUT ./conformance/storeclient
//
// Use:
//
//	storeclient -url STORE-URL -trusted ROOT -model MODELSTREAM [-serial SERIAL -key PEM] < steps.json
//
// Without -serial the client runs without a device session (anonymous, or
// with -auth as UBUNTU_STORE_AUTH-style "Bearer TOKEN"). Exit status: 0 every
// step succeeded, 1 some step failed, 2 usage or setup error.
package main

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io/ioutil"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/snapcore/snapd/asserts"
	"github.com/snapcore/snapd/asserts/snapasserts"
	"github.com/snapcore/snapd/overlord/auth"
	"github.com/snapcore/snapd/snap"
	"github.com/snapcore/snapd/store"

	"../assertstream"
)

type step struct {
	Op       string   `json:"op"`
	Name     string   `json:"name"`
	SnapID   string   `json:"snap-id"`
	Channel  string   `json:"channel"`
	Revision int      `json:"revision"`
	Query    string   `json:"query"`
	SnapIDs  []string `json:"snap-ids"`
}

type outcome struct {
	Op       string `json:"op"`
	OK       bool   `json:"ok"`
	Error    string `json:"error"`
	Name     string `json:"name,omitempty"`
	SnapID   string `json:"snap-id,omitempty"`
	Revision int    `json:"revision,omitempty"`
	Channel  string `json:"channel,omitempty"`
	SHA3     string `json:"sha3-384,omitempty"`
	Size     int64  `json:"size,omitempty"`
	// Assertions added to the device's database for this step, by type.
	Assertions map[string]int `json:"assertions,omitempty"`
	// Names found (find), channels seen (info).
	Found []string `json:"found,omitempty"`
}

type report struct {
	Sessions int       `json:"sessions"`
	Steps    []outcome `json:"steps"`
}

// device is what snapd's device manager gives the store client.
type device struct {
	state  auth.DeviceState
	key    asserts.PrivateKey
	serial *asserts.Serial
	model  *asserts.Model
	// sessions counts sessions obtained (UpdateDeviceAuth calls)
	sessions int
}

func (d *device) Device() (*auth.DeviceState, error) {
	s := d.state
	return &s, nil
}

func (d *device) UpdateDeviceAuth(_ *auth.DeviceState, session string) (*auth.DeviceState, error) {
	d.state.SessionMacaroon = session
	d.sessions++
	s := d.state
	return &s, nil
}

func (d *device) UpdateUserAuth(user *auth.UserState, discharges []string) (*auth.UserState, error) {
	return user, nil
}

func (d *device) StoreID(fallback string) (string, error) {
	if d.model != nil && d.model.Store() != "" {
		return d.model.Store(), nil
	}
	return fallback, nil
}

func (d *device) DeviceSessionRequestParams(nonce string) (*store.DeviceSessionRequestParams, error) {
	if d.serial == nil {
		return nil, store.ErrNoSerial
	}
	a, err := asserts.SignWithoutAuthority(asserts.DeviceSessionRequestType, map[string]interface{}{
		"brand-id":  d.serial.BrandID(),
		"model":     d.serial.Model(),
		"serial":    d.serial.Serial(),
		"nonce":     nonce,
		"timestamp": time.Now().UTC().Format(time.RFC3339),
	}, nil, d.key)
	if err != nil {
		return nil, err
	}
	return &store.DeviceSessionRequestParams{
		Request: a.(*asserts.DeviceSessionRequest), Serial: d.serial, Model: d.model,
	}, nil
}

func (d *device) ProxyStoreParams(defaultURL *url.URL) (string, *url.URL, error) {
	return "", defaultURL, nil
}

func (d *device) CloudInfo() (*auth.CloudInfo, error) { return nil, nil }

// bearer authorizes like snapd's tooling with {"t": "bearer", "v": TOKEN}.
type bearer struct{ value string }

func (b bearer) Authorize(r *http.Request, _ store.DeviceAndAuthContext, _ *auth.UserState, _ *store.AuthorizeOptions) error {
	r.Header.Set("Authorization", "Bearer "+b.value)
	return nil
}

func (b bearer) CanAuthorizeForUser(*auth.UserState) bool { return true }

func fail(code int, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "storeclient: "+format+"\n", args...)
	os.Exit(code)
}

func main() {
	storeURL := flag.String("url", "", "store base URL")
	trustedPath := flag.String("trusted", "", "root account + account-key stream")
	modelPath := flag.String("model", "", "model (optionally followed by its chain)")
	serialPath := flag.String("serial", "", "serial assertion of the device")
	keyPath := flag.String("key", "", "device key (PEM)")
	token := flag.String("auth", "", "a user's token, sent as Authorization: Bearer")
	storeID := flag.String("store", "", "store ID header when there is no model")
	workDir := flag.String("dir", "", "where downloads go (default: a temporary directory)")
	flag.Parse()
	if *storeURL == "" || *trustedPath == "" {
		fail(2, "-url and -trusted are required")
	}
	restore := snap.MockSanitizePlugsSlots(func(*snap.Info) {})
	defer restore()

	trusted, err := assertstream.ReadFile(*trustedPath)
	if err != nil {
		fail(2, "cannot read trusted: %v", err)
	}
	db, err := asserts.OpenDatabase(&asserts.DatabaseConfig{
		Backstore: asserts.NewMemoryBackstore(), Trusted: trusted,
	})
	if err != nil {
		fail(2, "cannot open the device database: %v", err)
	}
	dev := &device{}
	if *modelPath != "" {
		stream, err := assertstream.ReadFile(*modelPath)
		if err != nil || len(stream) == 0 {
			fail(2, "cannot read model: %v", err)
		}
		model, ok := stream[0].(*asserts.Model)
		if !ok {
			fail(2, "%s does not start with a model", *modelPath)
		}
		dev.model = model
		dev.state.Brand = model.BrandID()
		dev.state.Model = model.Model()
		// the chain as a seed carries it, in any order: add until nothing more goes in
		pending := stream[1:]
		for progress := true; progress && len(pending) > 0; {
			progress = false
			var rest []asserts.Assertion
			for _, a := range pending {
				if err := db.Add(a); err != nil && !asserts.IsUnaccceptedUpdate(err) {
					rest = append(rest, a)
				} else {
					progress = true
				}
			}
			pending = rest
		}
		if err := db.Add(model); err != nil && !asserts.IsUnaccceptedUpdate(err) {
			fail(2, "the device database refuses the model: %v", err)
		}
	}
	if *serialPath != "" {
		stream, err := assertstream.ReadFile(*serialPath)
		if err != nil || len(stream) == 0 {
			fail(2, "cannot read serial: %v", err)
		}
		serial, ok := stream[0].(*asserts.Serial)
		if !ok {
			fail(2, "%s does not start with a serial", *serialPath)
		}
		dev.serial = serial
		dev.state.Serial = serial.Serial()
		if dev.key, err = loadKey(*keyPath); err != nil {
			fail(2, "%v", err)
		}
	}
	u, err := url.Parse(*storeURL)
	if err != nil {
		fail(2, "bad -url: %v", err)
	}
	cfg := store.DefaultConfig()
	cfg.StoreBaseURL = u
	cfg.AssertionsBaseURL = u
	cfg.Architecture = "amd64"
	cfg.Series = "16"
	cfg.StoreID = *storeID
	if *token != "" {
		cfg.Authorizer = bearer{*token}
	}
	var dauth store.DeviceAndAuthContext
	if dev.serial != nil || dev.model != nil {
		dauth = dev
	}
	sto := store.New(cfg, dauth)

	dir := *workDir
	if dir == "" {
		if dir, err = ioutil.TempDir("", "storeclient-"); err != nil {
			fail(2, "%v", err)
		}
		defer os.RemoveAll(dir)
	}
	var steps struct {
		Steps []step `json:"steps"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&steps); err != nil {
		fail(2, "cannot read the steps: %v", err)
	}
	rep := report{Steps: []outcome{}}
	ok := true
	for _, st := range steps.Steps {
		out := run(sto, db, dev, dir, st)
		ok = ok && out.OK
		rep.Steps = append(rep.Steps, out)
	}
	rep.Sessions = dev.sessions
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep)
	if !ok {
		os.Exit(1)
	}
}

func run(sto *store.Store, db *asserts.Database, dev *device, dir string, st step) outcome {
	out := outcome{Op: st.Op, Name: st.Name, Assertions: map[string]int{}}
	var err error
	switch st.Op {
	case "install", "download", "refresh":
		err = snapStep(sto, db, dev, dir, st, &out)
	case "info":
		var info *snap.Info
		info, err = sto.SnapInfo(context.Background(), store.SnapSpec{Name: st.Name}, nil)
		if err == nil {
			out.SnapID = info.SnapID
			out.Revision = info.Revision.N
			for name := range info.Channels {
				out.Found = append(out.Found, name)
			}
		}
	case "find":
		var found []*snap.Info
		found, err = sto.Find(context.Background(), &store.Search{Query: st.Query}, nil)
		for _, info := range found {
			out.Found = append(out.Found, info.SnapName())
		}
	case "declarations":
		err = declarations(sto, db, st.SnapIDs, &out)
	default:
		err = fmt.Errorf("unknown op %q", st.Op)
	}
	if err != nil {
		out.Error = err.Error()
	} else {
		out.OK = true
	}
	return out
}

func snapStep(sto *store.Store, db *asserts.Database, dev *device, dir string, st step, out *outcome) error {
	ctx := context.Background()
	var current []*store.CurrentSnap
	action := &store.SnapAction{Action: st.Op, InstanceName: st.Name, Channel: st.Channel}
	if st.Op == "refresh" {
		current = []*store.CurrentSnap{{
			InstanceName: st.Name, SnapID: st.SnapID, Revision: snap.R(st.Revision),
			TrackingChannel: st.Channel, RefreshedDate: time.Now().Add(-time.Hour),
		}}
		action = &store.SnapAction{Action: "refresh", InstanceName: st.Name, SnapID: st.SnapID}
	} else if st.Revision != 0 {
		action.Revision = snap.R(st.Revision)
	}
	results, _, err := sto.SnapAction(ctx, current, []*store.SnapAction{action}, nil, nil, nil)
	if err != nil {
		return err
	}
	if len(results) != 1 {
		return fmt.Errorf("expected one result, got %d", len(results))
	}
	info := results[0].Info
	out.SnapID = info.SnapID
	out.Revision = info.Revision.N
	out.Channel = info.Channel
	out.Name = info.SnapName()
	target := filepath.Join(dir, fmt.Sprintf("%s_%d.snap", info.SnapName(), info.Revision.N))
	if err := sto.Download(ctx, info.SnapName(), target, &info.DownloadInfo, nil, nil, nil); err != nil {
		return fmt.Errorf("download: %v", err)
	}
	digest, size, err := asserts.SnapFileSHA3_384(target)
	if err != nil {
		return err
	}
	out.SHA3, out.Size = digest, int64(size)
	// what snapd's doFetch does after a download (assertstate.AddCurrentTrustedAssertions...)
	save := func(a asserts.Assertion) error {
		err := db.Add(a)
		if err != nil && !asserts.IsUnaccceptedUpdate(err) {
			return err
		}
		out.Assertions[a.Type().Name]++
		return nil
	}
	retrieve := func(ref *asserts.Ref) (asserts.Assertion, error) {
		return sto.Assertion(ref.Type, ref.PrimaryKey, nil)
	}
	f := asserts.NewFetcher(db, retrieve, save)
	if err := snapasserts.FetchSnapAssertions(f, digest, ""); err != nil {
		return fmt.Errorf("fetching the snap's assertions: %v", err)
	}
	var model *asserts.Model
	storeID := ""
	if dev.model != nil {
		model = dev.model
		storeID = dev.model.Store()
	}
	if _, err := snapasserts.CrossCheck(info.InstanceName(), digest, "", size, &info.SideInfo, model, db); err != nil {
		return fmt.Errorf("cross-check: %v", err)
	}
	if storeID != "" {
		if err := snapasserts.FetchStore(f, storeID); err != nil && !asserts.IsNotFound(err) {
			return fmt.Errorf("fetching the store assertion: %v", err)
		}
	}
	return nil
}

// query asks for the snap-declarations of snap ids, as assertstate's bulk refresh does.
type query struct {
	refs []*asserts.AtRevision
	errs []string
}

func (q *query) ToResolve() (map[asserts.Grouping][]*asserts.AtRevision, map[asserts.Grouping][]*asserts.AtSequence, error) {
	return map[asserts.Grouping][]*asserts.AtRevision{"0": q.refs}, nil, nil
}

func (q *query) AddError(e error, ref *asserts.Ref) error {
	q.errs = append(q.errs, fmt.Sprintf("%v: %v", ref, e))
	return nil
}

func (q *query) AddSequenceError(e error, atSeq *asserts.AtSequence) error {
	q.errs = append(q.errs, fmt.Sprintf("%v: %v", atSeq, e))
	return nil
}

func (q *query) AddGroupingError(e error, grouping asserts.Grouping) error {
	q.errs = append(q.errs, fmt.Sprintf("group %s: %v", grouping, e))
	return nil
}

func declarations(sto *store.Store, db *asserts.Database, snapIDs []string, out *outcome) error {
	q := &query{}
	for _, id := range snapIDs {
		q.refs = append(q.refs, &asserts.AtRevision{
			Ref:      asserts.Ref{Type: asserts.SnapDeclarationType, PrimaryKey: []string{"16", id}},
			Revision: asserts.RevisionNotKnown,
		})
	}
	_, results, err := sto.SnapAction(context.Background(), nil, nil, q, nil, nil)
	if err != nil {
		return err
	}
	if len(q.errs) > 0 {
		return fmt.Errorf("fetch-assertions errors: %v", q.errs)
	}
	b := asserts.NewBatch(nil)
	for _, r := range results {
		if err := sto.DownloadAssertions(r.StreamURLs, b, nil); err != nil {
			return err
		}
	}
	// the streams hold declarations; their prerequisites come through the fetcher
	retrieve := func(ref *asserts.Ref) (asserts.Assertion, error) {
		return sto.Assertion(ref.Type, ref.PrimaryKey, nil)
	}
	if err := b.CommitToAndObserve(db, func(a asserts.Assertion) {
		out.Assertions[a.Type().Name]++
	}, &asserts.CommitOptions{Precheck: false}); err != nil {
		// fetch missing prerequisites (accounts, keys), then commit again
		f := asserts.NewFetcher(db, retrieve, func(a asserts.Assertion) error {
			err := db.Add(a)
			if err != nil && !asserts.IsUnaccceptedUpdate(err) {
				return err
			}
			out.Assertions[a.Type().Name]++
			return nil
		})
		for _, ref := range q.refs {
			if err := f.Fetch(&ref.Ref); err != nil {
				return err
			}
		}
	}
	if out.Assertions["snap-declaration"] == 0 {
		for _, ref := range q.refs {
			if _, err := ref.Ref.Resolve(db.Find); err != nil {
				return fmt.Errorf("declaration not in the database: %v", err)
			}
		}
	}
	return nil
}

func loadKey(path string) (asserts.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read key: %v", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	var rsaKey *rsa.PrivateKey
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		var ok bool
		if rsaKey, ok = k.(*rsa.PrivateKey); !ok {
			return nil, fmt.Errorf("%s: not an RSA key", path)
		}
	case "RSA PRIVATE KEY":
		if rsaKey, err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%s: unsupported PEM block %q", path, block.Type)
	}
	return asserts.RSAPrivateKey(rsaKey), nil
}

// Command snapdcheck lets snapd's own assertion code judge assertions and
// statements produced by iotstore (a self-hosted snap store).
//
// The point of this program is that *snapd* decides, not us: every check and
// every signature below goes through snapd's exported `asserts` and
// `asserts/signtool` packages (snapd 2.57.6 from Debian's
// golang-github-snapcore-snapd-dev), so the Python conformance tests compare
// our library against the code that runs on devices and in `snap sign`.
//
// Build (GOPATH mode; the Debian package ships a GOPATH tree, not modules,
// and snapd needs the nosecboot tag to compile without its TPM dependencies):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode CGO_ENABLED=0 \
//	    go build -tags nosecboot -o OUT ./conformance/snapdcheck
//
// Subcommands:
//
//	snapdcheck verify -trusted ROOTSTREAM [-now RFC3339] [-headers] [FILE...]
//	snapdcheck sign -key PEMFILE            < statement.json
//	snapdcheck keyid -key PEMFILE
//
// Exit status: 0 success (verify: every line ok), 1 refused by snapd
// (verify: at least one line not ok; sign: snapd refused the statement),
// 2 usage or setup error (bad flags, unreadable trusted set or key).
package main

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/snapcore/snapd/asserts"
	"github.com/snapcore/snapd/asserts/signtool"

	"../assertstream"
)

const usageText = `usage:
  snapdcheck verify -trusted ROOTSTREAM [-now RFC3339] [-headers] [FILE...]
  snapdcheck sign -key PEMFILE  < statement.json
  snapdcheck keyid -key PEMFILE
FILE '-' (or no FILE) reads a stream from stdin.
`

// usageError marks failures that are the caller's fault or the environment's
// (exit 2), as opposed to snapd refusing an assertion (exit 1).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...interface{}) error {
	return usageError{fmt.Sprintf(format, args...)}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usageText)
		os.Exit(2)
	}
	var code int
	var err error
	switch os.Args[1] {
	case "verify":
		code, err = runVerify(os.Args[2:])
	case "sign":
		code, err = runSign(os.Args[2:])
	case "keyid":
		code, err = runKeyID(os.Args[2:])
	case "-h", "-help", "--help", "help":
		fmt.Print(usageText)
		return
	default:
		err = usagef("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "snapdcheck %s: %v\n", os.Args[1], err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
	os.Exit(code)
}

// newFlagSet returns a flag set whose parse errors become exit status 2
// without flag's own os.Exit, so main keeps control of the exit codes.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.Usage = func() { fmt.Fprint(os.Stderr, usageText) }
	return fs
}

// ---------------------------------------------------------------- verify

// result is one output line of verify. Pointers and omitempty keep the two
// line shapes distinct: assertion lines carry type/primary-key/index, file
// decode errors carry only file/ok/error.
type result struct {
	File       string                 `json:"file"`
	Index      *int                   `json:"index,omitempty"`
	Type       string                 `json:"type,omitempty"`
	PrimaryKey *[]string              `json:"primary-key,omitempty"`
	OK         bool                   `json:"ok"`
	Error      string                 `json:"error"`
	Note       string                 `json:"note,omitempty"`
	Headers    map[string]interface{} `json:"headers,omitempty"`
	Body       *string                `json:"body,omitempty"`
}

// item is one decoded input assertion waiting to be judged.
type item struct {
	a   asserts.Assertion
	res *result
}

func runVerify(args []string) (int, error) {
	fs := newFlagSet("verify")
	trustedPath := fs.String("trusted", "", "stream of the trusted account + account-key assertions (required)")
	nowStr := fs.String("now", "", "judge key validity as if the current time were this RFC3339 time")
	withHeaders := fs.Bool("headers", false, "also print snapd's decoded headers and body per assertion")
	if err := fs.Parse(args); err != nil {
		return 2, usageError{err.Error()}
	}
	if *trustedPath == "" {
		return 2, usagef("-trusted is required")
	}
	files := fs.Args()
	if len(files) == 0 {
		files = []string{"-"}
	}

	trusted, err := decodeFile(*trustedPath)
	if err != nil {
		return 2, usagef("cannot read trusted set %s: %v", *trustedPath, err)
	}
	if len(trusted) == 0 {
		return 2, usagef("trusted set %s holds no assertions", *trustedPath)
	}

	cfg := &asserts.DatabaseConfig{
		Trusted:   trusted,
		Backstore: asserts.NewMemoryBackstore(),
	}
	if *nowStr != "" {
		now, err := time.Parse(time.RFC3339, *nowStr)
		if err != nil {
			return 2, usagef("bad -now: %v", err)
		}
		// snapd reads the clock through an unexported variable, but the
		// database runs its checks through the configurable Checkers list
		// and hands each checker the time window it believes "now" to be.
		// Wrapping snapd's DefaultCheckers and pinning that window to
		// [now, now] is exactly what a device whose clock shows `now`
		// would do, while the checks themselves stay snapd's.
		cfg.Checkers = pinnedClockCheckers(now)
	}
	db, err := asserts.OpenDatabase(cfg)
	if err != nil {
		return 2, usagef("cannot open database: %v", err)
	}

	// Decode everything first; output keeps the input order.
	var all []*result
	var pending []*item
	for _, f := range files {
		as, err := decodeFile(f)
		for i, a := range as {
			idx := i
			res := &result{File: f, Index: &idx, Type: a.Type().Name, PrimaryKey: primaryKey(a)}
			if *withHeaders {
				res.Headers = a.Headers()
				body := string(a.Body())
				res.Body = &body
			}
			all = append(all, res)
			pending = append(pending, &item{a: a, res: res})
		}
		if err != nil {
			all = append(all, &result{File: f, OK: false, Error: "decode: " + err.Error()})
		}
	}

	// The inputs come in no particular order (a store may serve a chain
	// leaf-first), so instead of sorting by prerequisites we retry failed
	// assertions in passes until a pass makes no progress. The error kept
	// is the one from the last attempt, i.e. with every possible
	// prerequisite already in the database.
	for len(pending) > 0 {
		var still []*item
		for _, it := range pending {
			ok, note, err := judge(db, it.a)
			it.res.OK, it.res.Note = ok, note
			it.res.Error = ""
			if err != nil {
				it.res.Error = err.Error()
			}
			if !ok {
				still = append(still, it)
			}
		}
		if len(still) == len(pending) {
			break // no progress: the remaining errors are final
		}
		pending = still
	}

	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	code := 0
	for _, r := range all {
		if !r.OK {
			code = 1
		}
		if err := enc.Encode(r); err != nil {
			return 2, err
		}
	}
	return code, nil
}

// judge checks one assertion the way the receiving snapd (or, for the three
// request types, the receiving store/vault) would. It returns ok, an
// optional note explaining an ok that is not a plain Add, and snapd's error.
func judge(db *asserts.Database, a asserts.Assertion) (bool, string, error) {
	switch a.Type() {
	case asserts.AccountKeyRequestType:
		// No authority, so the database will not store it, but Check
		// verifies the signature with the key in the body and that the
		// account exists: what a store does before issuing the account-key.
		if err := db.Check(a); err != nil {
			return false, "", err
		}
		return true, "checked", nil
	case asserts.SerialRequestType:
		// Check refuses this type ("cannot check no-authority assertion
		// type"): unlike account-key-request it does not tell the database
		// its key. Decoding already tied sign-key-sha3-384 to device-key,
		// so what is left, and what a serial vault checks, is the
		// signature against the embedded device key.
		req := a.(*asserts.SerialRequest)
		if err := asserts.SignatureCheck(req, req.DeviceKey()); err != nil {
			return false, "", err
		}
		return true, "checked against its own device-key", nil
	case asserts.DeviceSessionRequestType:
		return judgeDeviceSessionRequest(db, a.(*asserts.DeviceSessionRequest))
	}

	// Mirror snapd's own ingestion of streams (asserts.Batch, used by
	// `snap ack` and the store client): assertions of the trusted set are
	// skipped, and an update that is not newer is accepted idempotently.
	// We are stricter than snapd in one way: the skipped copy must be
	// byte-identical, because a store serving a *different* assertion
	// under the same primary key and revision is a bug snapd would hide.
	if trusted, err := a.Ref().Resolve(db.FindTrusted); err == nil {
		if sameBytes(trusted, a) {
			return true, "trusted", nil
		}
		// Let snapd word the refusal (a failed check or the clash error).
		return false, "", db.Add(a)
	}
	err := db.Add(a)
	if err == nil {
		return true, "", nil
	}
	var revErr *asserts.RevisionError
	if errors.As(err, &revErr) && revErr.Used == revErr.Current {
		if cur, ferr := a.Ref().Resolve(db.Find); ferr == nil && sameBytes(cur, a) {
			return true, "already present", nil
		}
	}
	return false, "", err
}

// judgeDeviceSessionRequest checks a device-session-request like a store
// does when a device asks for a session: the signature must verify with the
// device key of the serial assertion (brand-id, model, serial) that the
// store already holds. snapd has no Database path for this type, so the
// public SignatureCheck is the snapd code that decides.
func judgeDeviceSessionRequest(db *asserts.Database, req *asserts.DeviceSessionRequest) (bool, string, error) {
	serial, err := db.Find(asserts.SerialType, map[string]string{
		"brand-id": req.BrandID(),
		"model":    req.Model(),
		"serial":   req.Serial(),
	})
	if err != nil {
		return false, "", fmt.Errorf("cannot find serial for device-session-request: %v", err)
	}
	if err := asserts.SignatureCheck(req, serial.(*asserts.Serial).DeviceKey()); err != nil {
		return false, "", err
	}
	return true, "checked against serial device-key", nil
}

// pinnedClockCheckers wraps snapd's default checkers so that they all see
// `now` as both the earliest and the latest possible current time.
func pinnedClockCheckers(now time.Time) []asserts.Checker {
	out := make([]asserts.Checker, 0, len(asserts.DefaultCheckers))
	for _, c := range asserts.DefaultCheckers {
		c := c
		out = append(out, func(a asserts.Assertion, k *asserts.AccountKey, dc []*asserts.AssertionConstraints, db asserts.RODatabase, _, _ time.Time) ([]*asserts.AssertionConstraints, error) {
			return c(a, k, dc, db, now, now)
		})
	}
	return out
}

func sameBytes(x, y asserts.Assertion) bool {
	return string(asserts.Encode(x)) == string(asserts.Encode(y))
}

// primaryKey copies the primary key so that types without one (serial-request)
// print as [] rather than null.
func primaryKey(a asserts.Assertion) *[]string {
	pk := append([]string{}, a.Ref().PrimaryKey...)
	return &pk
}

// decodeFile decodes the stream in the file at path, or on stdin for "-"
// (see assertstream.Decode).
func decodeFile(path string) ([]asserts.Assertion, error) {
	if path == "-" {
		return assertstream.Decode(os.Stdin)
	}
	return assertstream.ReadFile(path)
}

// ---------------------------------------------------------------- sign

func runSign(args []string) (int, error) {
	fs := newFlagSet("sign")
	keyPath := fs.String("key", "", "PEM RSA private key (PKCS#8 or PKCS#1)")
	if err := fs.Parse(args); err != nil {
		return 2, usageError{err.Error()}
	}
	if *keyPath == "" || fs.NArg() != 0 {
		return 2, usagef("need -key PEMFILE and the statement on stdin")
	}
	priv, err := loadKey(*keyPath)
	if err != nil {
		return 2, err
	}
	statement, err := io.ReadAll(os.Stdin)
	if err != nil {
		return 2, usagef("cannot read statement: %v", err)
	}
	// The in-memory keypair manager plays the role of the gpg keyring in
	// `snap sign`; signtool.Sign is the function behind `snap sign`, so
	// header parsing, canonical order and the signature packet are snapd's.
	mgr := asserts.NewMemoryKeypairManager()
	if err := mgr.Put(priv); err != nil {
		return 2, usagef("cannot load key: %v", err)
	}
	out, err := signtool.Sign(&signtool.Options{
		KeyID:     priv.PublicKey().ID(),
		Statement: statement,
	}, mgr)
	if err != nil {
		return 1, err
	}
	_, err = os.Stdout.Write(out)
	return 0, err
}

// ---------------------------------------------------------------- keyid

func runKeyID(args []string) (int, error) {
	fs := newFlagSet("keyid")
	keyPath := fs.String("key", "", "PEM RSA private key (PKCS#8 or PKCS#1)")
	if err := fs.Parse(args); err != nil {
		return 2, usageError{err.Error()}
	}
	if *keyPath == "" || fs.NArg() != 0 {
		return 2, usagef("need -key PEMFILE")
	}
	priv, err := loadKey(*keyPath)
	if err != nil {
		return 2, err
	}
	enc, err := asserts.EncodePublicKey(priv.PublicKey())
	if err != nil {
		return 1, err
	}
	// The encoded key has embedded newlines; a JSON string keeps the
	// output two lines long and unambiguous to parse.
	js, err := json.Marshal(string(enc))
	if err != nil {
		return 1, err
	}
	fmt.Printf("%s\n%s\n", priv.PublicKey().ID(), js)
	return 0, nil
}

// loadKey reads an unencrypted RSA private key in PEM, PKCS#8 ("PRIVATE
// KEY") or PKCS#1 ("RSA PRIVATE KEY"), and wraps it as a snapd key.
func loadKey(path string) (asserts.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("cannot read key: %v", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, usagef("%s: no PEM block", path)
	}
	var rsaKey *rsa.PrivateKey
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, usagef("%s: %v", path, err)
		}
		var ok bool
		if rsaKey, ok = k.(*rsa.PrivateKey); !ok {
			return nil, usagef("%s: not an RSA key (snapd supports RSA only)", path)
		}
	case "RSA PRIVATE KEY":
		rsaKey, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, usagef("%s: %v", path, err)
		}
	default:
		return nil, usagef("%s: unsupported PEM block %q", path, block.Type)
	}
	return asserts.RSAPrivateKey(rsaKey), nil
}

// Command devicereg registers a device with a serial vault the way snapd's
// device manager does at first boot, and judges the answer with snapd's own
// assertion code.
//
// snapd's registration code (overlord/devicestate, handlers_serial.go) cannot
// be called on its own: it needs a whole overlord. This program reproduces
// its two HTTP calls and its checks step by step, and uses snapd 2.57.6's
// exported packages (Debian golang-github-snapcore-snapd-dev) for everything
// that matters to interoperability:
//
//   - the device key is an asserts.RSAPrivateKey (4096 bits, as snapd's
//     keyLength), its public part encoded with asserts.EncodePublicKey;
//   - the serial-request is built with asserts.SignWithoutAuthority from the
//     same headers snapd uses (brand-id, model, request-id, device-key,
//     optional serial; the prepare-device hook's registration.body as body);
//   - the stream is written with asserts.NewEncoder (serial-request, then
//     the model), the User-Agent comes from snapdenv.UserAgent();
//   - the answer is decoded with asserts.NewDecoder, exactly one serial is
//     required, the rest goes into an asserts.Batch, and the batch plus the
//     serial are committed with Precheck into an asserts.Database whose
//     Trusted set is the deployment's root (acceptSerialPlusBatch).
//
// Error messages for refusals are read as snapd reads them (retryBadStatus):
// only when Content-Type is exactly "application/json", "message" or else
// "error_list[0].message".
//
// Build (GOPATH mode; see conformance/README.md):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode CGO_ENABLED=0 \
//	    go build -tags nosecboot -o OUT ./conformance/devicereg
//
// Use:
//
//	devicereg -url DEVICE-SERVICE-URL -api-key KEY -model MODELSTREAM -trusted ROOTSTREAM [flags]
//
// It prints one JSON object (see result) on stdout. Exit status: 0 the
// device got a serial its database accepts, 1 refused or not accepted,
// 2 usage or setup error.
package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/snapcore/snapd/asserts"
	"github.com/snapcore/snapd/snapdenv"
	"github.com/snapcore/snapd/strutil"

	"../assertstream"
)

// snapdVersion is the snapd release whose code this program is built with.
const snapdVersion = "2.57.6"

// result is what devicereg prints.
type result struct {
	// OK: the device holds a serial its own assertion database accepted.
	OK bool `json:"ok"`
	// Stage where the registration stopped: "request-id", "serial",
	// "verify" or "done".
	Stage string `json:"stage"`
	// Status is the HTTP status of the last answer (0 if none).
	Status int `json:"status"`
	// ContentType of the last answer.
	ContentType string `json:"content-type"`
	// Message is the service's message as snapd reads it (only from an
	// exactly application/json body): "message", else error_list[0].message.
	Message string `json:"message"`
	// Error is the text snapd's task would fail with (empty when OK).
	Error string `json:"error"`
	// RequestID used in the serial-request.
	RequestID string `json:"request-id"`
	// DeviceKeyID is the device key's sha3-384 id.
	DeviceKeyID string `json:"device-key-id"`
	// Polls counts the 202 answers seen before the final one.
	Polls int `json:"polls"`
	// Serial is the serial number granted, SerialRevision its revision,
	// SerialAssertion its text, Stream the types in the answer in order.
	Serial          string   `json:"serial"`
	SerialRevision  int      `json:"serial-revision"`
	SerialAssertion string   `json:"serial-assertion"`
	SerialSignKeyID string   `json:"serial-sign-key-id"`
	Stream          []string `json:"stream"`
	// ModelInDatabase: the -model file carried the model's chain and the
	// model was added to the device database (as from the seed).
	ModelInDatabase bool `json:"model-in-database"`
}

type options struct {
	serviceURL    string
	apiKey        string
	serialAPIKey  string
	modelPath     string
	streamModel   string
	trustedPath   string
	keyPath       string
	saveKeyPath   string
	bits          int
	serial        string
	body          string
	requestID     string
	pollDelay     time.Duration
	maxPolls      int
	timeout       time.Duration
	noModel       bool
	extraHeaders  headerFlags
	userAgentFlag string
}

type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ",") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

// usageError marks failures that are the caller's fault (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...interface{}) error {
	return usageError{fmt.Sprintf(format, args...)}
}

func main() {
	res, err := run(os.Args[1:])
	if err != nil {
		// usage errors and setup failures alike: not a verdict on the service
		fmt.Fprintf(os.Stderr, "devicereg: %v\n", err)
		os.Exit(2)
	}
	out, err := json.Marshal(res)
	if err != nil {
		fmt.Fprintf(os.Stderr, "devicereg: %v\n", err)
		os.Exit(2)
	}
	fmt.Println(string(out))
	if !res.OK {
		os.Exit(1)
	}
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("devicereg", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.StringVar(&o.serviceURL, "url", "", "device-service.url of the gadget (request-id and serial are resolved against it)")
	fs.StringVar(&o.apiKey, "api-key", "", "value of the api-key header (device-service.headers) on both calls; empty: no header")
	fs.StringVar(&o.serialAPIKey, "serial-api-key", "", "another api-key for the serial call only (negative tests)")
	fs.StringVar(&o.modelPath, "model", "", "the device's model assertion, optionally followed by its chain (account, account-key) as in a seed")
	fs.StringVar(&o.streamModel, "stream-model", "", "send this model in the serial stream instead of the device's (negative tests)")
	fs.BoolVar(&o.noModel, "no-model", false, "send the serial-request alone, without the model")
	fs.StringVar(&o.trustedPath, "trusted", "", "the deployment's root stream (account + account-key) the device trusts")
	fs.StringVar(&o.keyPath, "key", "", "load the device key from this PEM file instead of generating one")
	fs.StringVar(&o.saveKeyPath, "save-key", "", "write the (generated) device key to this PEM file")
	fs.IntVar(&o.bits, "bits", 4096, "size of a generated device key (snapd: 4096)")
	fs.StringVar(&o.serial, "serial", "", "registration.proposed-serial: the serial header of the serial-request")
	fs.StringVar(&o.body, "body", "", "registration.body: the serial-request body")
	fs.StringVar(&o.requestID, "request-id", "", "skip the request-id call and use this one (replay tests)")
	fs.DurationVar(&o.pollDelay, "poll-delay", 60*time.Second, "wait after a 202 before posting the same serial-request again (snapd: 60s)")
	fs.IntVar(&o.maxPolls, "max-polls", 10, "give up after this many 202 answers")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "HTTP client timeout (snapd: 30s)")
	fs.Var(&o.extraHeaders, "header", "extra header NAME=VALUE on both calls (repeatable)")
	fs.StringVar(&o.userAgentFlag, "user-agent", "", "override snapd's User-Agent")
	if err := fs.Parse(args); err != nil {
		return nil, usageError{err.Error()}
	}
	if fs.NArg() != 0 {
		return nil, usagef("unexpected arguments: %v", fs.Args())
	}
	if o.serviceURL == "" || o.modelPath == "" || o.trustedPath == "" {
		return nil, usagef("-url, -model and -trusted are required")
	}
	return o, nil
}

func run(args []string) (*result, error) {
	o, err := parseFlags(args)
	if err != nil {
		return nil, err
	}
	snapdenv.SetUserAgentFromVersion(snapdVersion, nil)
	userAgent := snapdenv.UserAgent()
	if o.userAgentFlag != "" {
		userAgent = o.userAgentFlag
	}

	trusted, err := assertstream.ReadFile(o.trustedPath)
	if err != nil {
		return nil, usagef("cannot read trusted set %s: %v", o.trustedPath, err)
	}
	if len(trusted) == 0 {
		return nil, usagef("trusted set %s holds no assertions", o.trustedPath)
	}
	model, modelChain, err := readModel(o.modelPath)
	if err != nil {
		return nil, err
	}
	sentModel := model
	if o.streamModel != "" {
		if sentModel, _, err = readModel(o.streamModel); err != nil {
			return nil, err
		}
	}
	privKey, err := deviceKey(o)
	if err != nil {
		return nil, err
	}

	// setURLs: device-service.url always gets a trailing slash, then
	// "request-id" and "serial" are resolved against it (RFC 3986).
	base := o.serviceURL
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	baseURL, err := url.Parse(base)
	if err != nil {
		return nil, usagef("bad -url: %v", err)
	}
	requestIDURL := baseURL.ResolveReference(&url.URL{Path: "request-id"}).String()
	serialURL := baseURL.ResolveReference(&url.URL{Path: "serial"}).String()

	headers := map[string]string{}
	if o.apiKey != "" {
		headers["api-key"] = o.apiKey
	}
	for _, h := range o.extraHeaders {
		name, value, found := strings.Cut(h, "=")
		if !found {
			return nil, usagef("-header wants NAME=VALUE, got %q", h)
		}
		headers[name] = value
	}
	client := &http.Client{Timeout: o.timeout}
	res := &result{DeviceKeyID: privKey.PublicKey().ID(), Stream: []string{}}

	// ---- step 1: request-id (prepareSerialRequest)
	res.Stage = "request-id"
	requestID := o.requestID
	if requestID == "" {
		req, err := http.NewRequest("POST", requestIDURL, nil)
		if err != nil {
			return nil, usagef("cannot create request-id request %q", requestIDURL)
		}
		req.Header.Set("User-Agent", userAgent)
		applyHeaders(req, headers)
		resp, err := client.Do(req)
		if err != nil {
			res.Error = fmt.Sprintf("cannot retrieve request-id for making a request for a serial: %v", err)
			return res, nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res.Status, res.ContentType = resp.StatusCode, resp.Header.Get("Content-Type")
		if err != nil {
			res.Error = fmt.Sprintf("cannot read response with request-id for making a request for a serial: %v", err)
			return res, nil
		}
		if resp.StatusCode != 200 {
			res.Message, res.Error = badStatus("cannot retrieve request-id for making a request for a serial", resp, body)
			return res, nil
		}
		var rid struct {
			RequestID string `json:"request-id"`
		}
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(&rid); err != nil {
			res.Error = fmt.Sprintf("cannot read response with request-id for making a request for a serial: %v", err)
			return res, nil
		}
		requestID = rid.RequestID
	}
	res.RequestID = requestID

	encodedPubKey, err := asserts.EncodePublicKey(privKey.PublicKey())
	if err != nil {
		return nil, fmt.Errorf("cannot encode device public key: %v", err)
	}
	srHeaders := map[string]interface{}{
		"brand-id":   model.BrandID(),
		"model":      model.Model(),
		"request-id": requestID,
		"device-key": string(encodedPubKey),
	}
	if o.serial != "" {
		srHeaders["serial"] = o.serial
	}
	var srBody []byte
	if o.body != "" {
		srBody = []byte(o.body)
	}
	serialReq, err := asserts.SignWithoutAuthority(asserts.SerialRequestType, srHeaders, srBody, privKey)
	if err != nil {
		return nil, fmt.Errorf("cannot sign serial-request: %v", err)
	}
	buf := new(bytes.Buffer)
	enc := asserts.NewEncoder(buf)
	if err := enc.Encode(serialReq); err != nil {
		return nil, fmt.Errorf("cannot encode serial-request: %v", err)
	}
	if !o.noModel {
		if err := enc.Encode(sentModel); err != nil {
			return nil, fmt.Errorf("cannot encode ancillary assertion: %v", err)
		}
	}
	serialRequest := buf.Bytes()

	// ---- step 2: serial (submitSerialRequest), polling on 202 with the
	// same serial-request
	res.Stage = "serial"
	serialHeaders := headers
	if o.serialAPIKey != "" {
		serialHeaders = map[string]string{}
		for k, v := range headers {
			serialHeaders[k] = v
		}
		serialHeaders["api-key"] = o.serialAPIKey
	}
	var answer []byte
	for {
		req, err := http.NewRequest("POST", serialURL, bytes.NewReader(serialRequest))
		if err != nil {
			return nil, usagef("cannot create serial-request request %q", serialURL)
		}
		req.Header.Set("User-Agent", userAgent)
		req.Header.Set("Snap-Device-Capabilities", "serial-stream")
		applyHeaders(req, serialHeaders)
		req.Header.Set("Content-Type", asserts.MediaType)
		resp, err := client.Do(req)
		if err != nil {
			res.Error = fmt.Sprintf("cannot deliver device serial request: %v", err)
			return res, nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res.Status, res.ContentType = resp.StatusCode, resp.Header.Get("Content-Type")
		if err != nil {
			res.Error = fmt.Sprintf("cannot read response to request for a serial: %v", err)
			return res, nil
		}
		if resp.StatusCode == 202 {
			res.Polls++
			if res.Polls > o.maxPolls {
				res.Error = fmt.Sprintf("still 202 after %d polls", o.maxPolls)
				return res, nil
			}
			time.Sleep(o.pollDelay)
			continue
		}
		if resp.StatusCode != 200 && resp.StatusCode != 201 {
			res.Message, res.Error = badStatus("cannot deliver device serial request", resp, body)
			return res, nil
		}
		answer = body
		break
	}

	// decode the stream: exactly one serial, everything else in a batch
	var serial *asserts.Serial
	batch := asserts.NewBatch(nil)
	dec := asserts.NewDecoder(bytes.NewReader(answer))
	for {
		got, err := dec.Decode()
		if err == io.EOF {
			break
		}
		if err != nil {
			res.Error = fmt.Sprintf("cannot read response to request for a serial: %v", err)
			return res, nil
		}
		res.Stream = append(res.Stream, got.Type().Name)
		if got.Type() == asserts.SerialType {
			if serial != nil {
				res.Error = "cannot accept more than a single device serial assertion from the device service"
				return res, nil
			}
			serial = got.(*asserts.Serial)
			continue
		}
		if err := batch.Add(got); err != nil {
			res.Error = err.Error()
			return res, nil
		}
	}
	if serial == nil {
		res.Error = "cannot proceed, received assertion stream from the device service missing device serial assertion"
		return res, nil
	}
	res.Stage = "verify"
	res.Serial = serial.Serial()
	res.SerialRevision = serial.Revision()
	res.SerialAssertion = string(asserts.Encode(serial))
	res.SerialSignKeyID = serial.SignKeyID()

	// getSerial's identity checks
	keyID := privKey.PublicKey().ID()
	if serial.BrandID() != model.BrandID() || serial.Model() != model.Model() || serial.DeviceKey().ID() != keyID {
		res.Error = fmt.Sprintf("obtained serial assertion does not match provided device identity information (brand, model, key id): %s / %s / %s != %s / %s / %s",
			serial.BrandID(), serial.Model(), serial.DeviceKey().ID(), model.BrandID(), model.Model(), keyID)
		return res, nil
	}
	if serial.BrandID() != serial.AuthorityID() && !strutil.ListContains(model.SerialAuthority(), serial.AuthorityID()) {
		res.Error = fmt.Sprintf("obtained serial assertion is signed by authority %q different from brand %q without model assertion with serial-authority set to to allow for them", serial.AuthorityID(), serial.BrandID())
		return res, nil
	}

	// the device's database: the trusted root, the seed (model + chain when
	// given), then acceptSerialPlusBatch
	db, err := asserts.OpenDatabase(&asserts.DatabaseConfig{
		Trusted:   trusted,
		Backstore: asserts.NewMemoryBackstore(),
	})
	if err != nil {
		return nil, fmt.Errorf("cannot open assertion database: %v", err)
	}
	if len(modelChain) > 0 {
		seed := asserts.NewBatch(nil)
		for _, a := range append(modelChain, asserts.Assertion(model)) {
			if err := seed.Add(a); err != nil {
				return nil, usagef("cannot use the model's chain: %v", err)
			}
		}
		if err := seed.CommitTo(db, &asserts.CommitOptions{Precheck: true}); err != nil {
			return nil, usagef("the device database refuses the model and its chain (seed): %v", err)
		}
		res.ModelInDatabase = true
	}
	if err := batch.Add(serial); err != nil {
		res.Error = fmt.Sprintf("cannot accept stream of assertions from device service: %v", err)
		return res, nil
	}
	if err := batch.CommitTo(db, &asserts.CommitOptions{Precheck: true}); err != nil {
		res.Error = fmt.Sprintf("cannot accept stream of assertions from device service: %v", err)
		return res, nil
	}
	// idempotency lookup doRequestSerial does: one serial for this key
	serials, err := db.FindMany(asserts.SerialType, map[string]string{
		"brand-id":            model.BrandID(),
		"model":               model.Model(),
		"device-key-sha3-384": keyID,
	})
	if err != nil || len(serials) != 1 {
		res.Error = fmt.Sprintf("the device database holds %d serials for the device key (%v)", len(serials), err)
		return res, nil
	}
	res.Stage = "done"
	res.OK = true
	return res, nil
}

func applyHeaders(req *http.Request, headers map[string]string) {
	for k, v := range headers {
		req.Header.Set(k, v)
	}
}

// badStatus reads a refusal as retryBadStatus does: the message only from a
// body whose Content-Type is exactly application/json.
func badStatus(reason string, resp *http.Response, body []byte) (string, string) {
	if resp.StatusCode > 500 {
		return "", fmt.Sprintf("%s: unexpected status %d", reason, resp.StatusCode)
	}
	if resp.Header.Get("Content-Type") == "application/json" {
		var srvErr struct {
			Message string `json:"message"`
			Errors  []struct {
				Message string `json:"message"`
			} `json:"error_list"`
		}
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(&srvErr); err == nil {
			msg := srvErr.Message
			if msg == "" && len(srvErr.Errors) > 0 {
				msg = srvErr.Errors[0].Message
			}
			if msg != "" {
				return msg, fmt.Sprintf("%s: %s", reason, msg)
			}
		}
	}
	return "", fmt.Sprintf("%s: unexpected status %d", reason, resp.StatusCode)
}

// readModel returns the first model in a stream and the other assertions
// (its chain, when the file is a seed-like bundle).
func readModel(path string) (*asserts.Model, []asserts.Assertion, error) {
	all, err := assertstream.ReadFile(path)
	if err != nil {
		return nil, nil, usagef("cannot read model %s: %v", path, err)
	}
	var model *asserts.Model
	var rest []asserts.Assertion
	for _, a := range all {
		if m, ok := a.(*asserts.Model); ok && model == nil {
			model = m
			continue
		}
		rest = append(rest, a)
	}
	if model == nil {
		return nil, nil, usagef("%s holds no model assertion", path)
	}
	return model, rest, nil
}

// deviceKey loads -key or generates a key as doGenerateDeviceKey does.
func deviceKey(o *options) (asserts.PrivateKey, error) {
	var rsaKey *rsa.PrivateKey
	if o.keyPath != "" {
		data, err := os.ReadFile(o.keyPath)
		if err != nil {
			return nil, usagef("cannot read key: %v", err)
		}
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, usagef("%s: no PEM block", o.keyPath)
		}
		switch block.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, usagef("%s: %v", o.keyPath, err)
			}
			var ok bool
			if rsaKey, ok = k.(*rsa.PrivateKey); !ok {
				return nil, usagef("%s: not an RSA key", o.keyPath)
			}
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, usagef("%s: %v", o.keyPath, err)
			}
			rsaKey = k
		default:
			return nil, usagef("%s: unsupported PEM block %q", o.keyPath, block.Type)
		}
	} else {
		k, err := rsa.GenerateKey(rand.Reader, o.bits)
		if err != nil {
			return nil, fmt.Errorf("cannot generate device key pair: %v", err)
		}
		rsaKey = k
	}
	if o.saveKeyPath != "" {
		data := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})
		if err := os.WriteFile(o.saveKeyPath, data, 0o600); err != nil {
			return nil, usagef("cannot save key: %v", err)
		}
	}
	return asserts.RSAPrivateKey(rsaKey), nil
}

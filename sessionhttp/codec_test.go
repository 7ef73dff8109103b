package sessionhttp_test

import (
	"bytes"
	"encoding/gob"
	"errors"
	"io"
	"math"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/sessionhttp"
)

type registered struct {
	Name  string
	Roles []string
}

type unregistered struct{ X int }

func init() { gob.Register(registered{}) }

func TestTypedCodecRoundTrip(t *testing.T) {
	t.Parallel()
	c := sessionhttp.TypedCodec{}
	for _, v := range []any{
		nil, "", "héllo", []byte{}, []byte{0, 255}, true, false,
		0, 1, -1, math.MaxInt, math.MinInt, int64(math.MinInt64), int32(math.MaxInt32), int32(math.MinInt32),
		0.0, -1.5, math.Inf(1), math.MaxFloat64,
		time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC), time.Date(2030, 1, 2, 3, 4, 5, 6, time.FixedZone("", -5*3600)),
		registered{Name: "ann", Roles: []string{"admin"}},
	} {
		b, err := c.Encode(v)
		if err != nil {
			t.Fatalf("Encode(%#v): %v", v, err)
		}
		got, err := c.Decode(b)
		if err != nil {
			t.Fatalf("Decode(Encode(%#v)): %v", v, err)
		}
		if tv, ok := v.(time.Time); ok {
			if gt, ok := got.(time.Time); !ok || !gt.Equal(tv) {
				t.Fatalf("time round trip: %v -> %v", v, got)
			}
			continue
		}
		if !reflect.DeepEqual(got, v) {
			t.Fatalf("round trip: %#v (%T) -> %#v (%T)", v, v, got, got)
		}
	}
	// Strings are stored readably for other services on the mesh.
	if b, _ := c.Encode("plain"); !bytes.Equal(b, append([]byte{0x01}, "plain"...)) {
		t.Fatalf("string encoding %q", b)
	}
}

func TestTypedCodecErrors(t *testing.T) {
	t.Parallel()
	c := sessionhttp.TypedCodec{}
	for _, v := range []any{make(chan int), func() {}, unregistered{1}} {
		if _, err := c.Encode(v); !errors.Is(err, sessionhttp.ErrEncode) {
			t.Errorf("Encode(%T) = %v, want ErrEncode", v, err)
		}
	}
	for _, b := range [][]byte{nil, {0x00, 1}, {0x03, 2}, {0x04}, {0x04, 0x80}, {0x06, 0xfe, 0xff, 0xff, 0xff, 0x7f}, {0x07, 1}, {0x08, 9}, {0x7f, 1, 2}, {0x42}} {
		if _, err := c.Decode(b); !errors.Is(err, sessionhttp.ErrDecode) {
			t.Errorf("Decode(%x) = %v, want ErrDecode", b, err)
		}
	}
}

// FuzzTypedCodecDecode: Decode never panics, and what it accepts encodes
// back to something it decodes to the same value.
func FuzzTypedCodecDecode(f *testing.F) {
	c := sessionhttp.TypedCodec{}
	for _, v := range []any{nil, "s", []byte("b"), true, 7, int64(-8), int32(9), 1.5, time.Unix(1, 2), registered{Name: "x"}} {
		b, _ := c.Encode(v)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := c.Decode(data)
		if err != nil {
			return
		}
		b, err := c.Encode(v)
		if err != nil {
			t.Fatalf("decoded %#v does not encode: %v", v, err)
		}
		w, err := c.Decode(b)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if tv, ok := v.(time.Time); ok {
			if !tv.Equal(w.(time.Time)) {
				t.Fatalf("time %v -> %v", v, w)
			}
			return
		}
		if f, ok := v.(float64); ok && math.IsNaN(f) {
			return
		}
		if !reflect.DeepEqual(v, w) {
			t.Fatalf("%#v -> %#v", v, w)
		}
	})
}

// TestCodecErrorSurfaces: a value the codec cannot encode is an error from
// Put, not a panic, and changes nothing.
func TestCodecErrorSurfaces(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	m := newManager(t, n, testConfig(true))
	errc := make(chan error, 4)
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		errc <- m.Put(r.Context(), "ch", make(chan int))
		errc <- m.Put(r.Context(), "obj", unregistered{1})
		// Over the mesh's bounds: refused by Put, not at commit (which
		// failed the whole request).
		errc <- m.Put(r.Context(), "big", strings.Repeat("v", n.Limits().MaxValueBytes+1))
		errc <- m.Put(r.Context(), strings.Repeat("k", n.Limits().MaxKeyBytes+1), "v")
		if m.Exists(r.Context(), "ch") || m.Exists(r.Context(), "obj") || m.Exists(r.Context(), "big") {
			t.Error("a failed Put changed the session")
		}
		io.WriteString(w, "handled")
	}))
	resp, body := call(t, serve(t, h, false), "POST", "/", nil)
	for _, want := range []error{sessionhttp.ErrEncode, sessionhttp.ErrEncode, sessionhttp.ErrTooLarge, sessionhttp.ErrInvalidKey} {
		if err := <-errc; !errors.Is(err, want) {
			t.Fatalf("Put: %v, want %v", err, want)
		}
	}
	if resp.StatusCode != 200 || body != "handled" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if got := resp.Header.Values("Set-Cookie"); len(got) != 0 {
		t.Fatalf("a request whose only writes failed got a session: %q", got)
	}
}

// failingCodec is a custom codec that refuses everything.
type failingCodec struct{ sessionhttp.TypedCodec }

func (failingCodec) Encode(any) ([]byte, error) { return nil, errors.New("nope") }

func TestCustomCodecErrorIsWrapped(t *testing.T) {
	t.Parallel()
	n := startNodes(t, 1, nil)[0]
	cfg := testConfig(true)
	cfg.Codec = failingCodec{}
	m := newManager(t, n, cfg)
	errc := make(chan error, 1)
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		errc <- m.Put(r.Context(), "k", "v")
	}))
	call(t, serve(t, h, false), "POST", "/", nil)
	if err := <-errc; !errors.Is(err, sessionhttp.ErrEncode) {
		t.Fatalf("custom codec error: %v", err)
	}
}

package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/sessionmesh/sessionmesh/internal/daemon"
	"github.com/sessionmesh/sessionmesh/transport"
)

const keygenUsage = `Usage: sessionmesh keygen <kind> [-o FILE]

Writes a new key file with mode 0600, creating its directory; an existing
file is never overwritten.

Kinds:
  identity        a peer identity (Ed25519), the file serve keeps in
                  <data dir>/identity.key; prints the peer id, for
                  --allowed-peers and --bootstrap addresses.
                  Default -o ./sessionmesh-data/identity.key
  psk             a 32-byte pre-shared key for --psk-file, in the libp2p
                  format (/key/swarm/psk/1.0.0/, base16). Give every peer of
                  the mesh the same file.  Default -o ./sessionmesh.psk
  encryption-key  a 32-byte key for --encryption-key-file (encryption at
                  rest), hex.  Default -o ./sessionmesh-encryption.key
  api-token       a bearer token for --api-token-file (64 hex characters).
                  Default -o ./sessionmesh-api.token

Flags:
  -o FILE         where to write the key
`

var keygenDefaults = map[string]string{
	"identity":       filepath.Join(daemon.DefaultDataDir, transport.IdentityFile),
	"psk":            "./sessionmesh.psk",
	"encryption-key": "./sessionmesh-encryption.key",
	"api-token":      "./sessionmesh-api.token",
}

func keygen(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || isHelp(args[0]) {
		w, code := stdout, 0
		if len(args) == 0 {
			w, code = stderr, 2
		}
		fmt.Fprint(w, keygenUsage)
		return code
	}
	kind := args[0]
	out, ok := keygenDefaults[kind]
	if !ok {
		fmt.Fprintf(stderr, "sessionmesh keygen: unknown kind %q\n\n%s", kind, keygenUsage)
		return 2
	}
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&out, "o", out, "")
	if err := fs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			fmt.Fprint(stdout, keygenUsage)
			return 0
		}
		fmt.Fprintf(stderr, "sessionmesh keygen: %v\n\n%s", err, keygenUsage)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sessionmesh keygen: unexpected argument %q\n\n%s", fs.Arg(0), keygenUsage)
		return 2
	}
	var err error
	switch kind {
	case "identity":
		id, gerr := daemon.GenerateIdentity(out)
		if err = gerr; err == nil {
			fmt.Fprintf(stdout, "wrote %s\npeer id: %s\n", out, id)
		}
	case "psk":
		if err = daemon.GeneratePSK(out); err == nil {
			fmt.Fprintf(stdout, "wrote %s: give every peer of the mesh --psk-file with a copy\n", out)
		}
	case "encryption-key":
		if err = daemon.GenerateEncryptionKey(out); err == nil {
			fmt.Fprintf(stdout, "wrote %s: keep it safe, the store cannot be read without it\n", out)
		}
	case "api-token":
		if err = daemon.GenerateAPIToken(out); err == nil {
			fmt.Fprintf(stdout, "wrote %s: clients send it as 'Authorization: Bearer <token>'\n", out)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "sessionmesh keygen: %v\n", err)
		return 1
	}
	return 0
}

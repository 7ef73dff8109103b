package daemon

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// checkStrictJSON refuses what encoding/json accepts silently but a strict
// API must not: a top-level value other than an object (null decodes into
// nothing), an object key given twice (the last one would win unseen), and
// a \u escape of a lone UTF-16 surrogate (replaced by U+FFFD, so a key
// would change under the client). body has already decoded without error.
func checkStrictJSON(body []byte) error {
	p := strictParser{b: body}
	p.space()
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return errors.New("the request body must be a JSON object")
	}
	if err := p.value(""); err != nil {
		return err
	}
	return nil
}

type strictParser struct {
	b []byte
	i int
}

func (p *strictParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// value checks the value at p.i; path names it in errors.
func (p *strictParser) value(path string) error {
	p.space()
	if p.i >= len(p.b) {
		return errors.New("unexpected end of JSON")
	}
	switch p.b[p.i] {
	case '{':
		p.i++
		seen := make(map[string]struct{})
		for {
			p.space()
			if p.i < len(p.b) && p.b[p.i] == '}' {
				p.i++
				return nil
			}
			key, err := p.str()
			if err != nil {
				return err
			}
			if _, dup := seen[key]; dup {
				return fmt.Errorf("key %s appears twice in %s", strconv.Quote(key), where(path))
			}
			seen[key] = struct{}{}
			p.space()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return errors.New("malformed object")
			}
			p.i++
			if err := p.value(path + "." + key); err != nil {
				return err
			}
			p.space()
			if p.i < len(p.b) && p.b[p.i] == ',' {
				p.i++
			}
		}
	case '[':
		p.i++
		for n := 0; ; n++ {
			p.space()
			if p.i < len(p.b) && p.b[p.i] == ']' {
				p.i++
				return nil
			}
			if err := p.value(fmt.Sprintf("%s[%d]", path, n)); err != nil {
				return err
			}
			p.space()
			if p.i < len(p.b) && p.b[p.i] == ',' {
				p.i++
			}
		}
	case '"':
		_, err := p.str()
		if err != nil {
			return fmt.Errorf("%s: %w", where(path), err)
		}
		return nil
	default: // number, true, false, null: already checked by the decoder
		for p.i < len(p.b) {
			switch p.b[p.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return nil
			}
			p.i++
		}
		return nil
	}
}

// str reads a string at p.i and returns it decoded, refusing escapes of
// lone surrogates.
func (p *strictParser) str() (string, error) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", errors.New("malformed object: want a string key")
	}
	p.i++
	var out []byte
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(out), nil
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			break
		}
		esc := p.b[p.i+1]
		p.i += 2
		if esc != 'u' {
			out = append(out, map[byte]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}[esc])
			continue
		}
		r, ok := p.hex4()
		if !ok {
			return "", errors.New("malformed \\u escape")
		}
		if utf16.IsSurrogate(r) {
			var r2 rune = -1
			if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
				p.i += 2
				r2, _ = p.hex4()
			}
			r = utf16.DecodeRune(r, r2)
			if r == utf8.RuneError {
				return "", errors.New("a \\u escape names a lone UTF-16 surrogate, which is not a character")
			}
		}
		out = utf8.AppendRune(out, r)
	}
	return "", errors.New("unterminated string")
}

func (p *strictParser) hex4() (rune, bool) {
	if p.i+4 > len(p.b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 16)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(v), true
}

func where(path string) string {
	if path == "" {
		return "the request body"
	}
	return path[1:]
}

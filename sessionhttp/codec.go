package sessionhttp

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"fmt"
	"math"
	"time"
)

// Codec turns one session value into the bytes of one field and back. Each
// value is encoded on its own, which is what lets concurrent requests merge
// per field. Implementations must be safe for concurrent use.
type Codec interface {
	// Encode returns the bytes of v, or an error for a value it cannot
	// encode.
	Encode(v any) ([]byte, error)
	// Decode returns the value encoded in data.
	Decode(data []byte) (any, error)
}

// TypedCodec is the default Codec: a type tag byte followed by a compact
// payload for the types the typed getters read (string, []byte, bool, int,
// int64, int32, float64, time.Time) and nil, and encoding/gob for anything
// else. As with scs, a type that travels through gob must be registered
// with gob.Register, on every peer, before it is stored or read; values gob
// cannot encode (channels, functions, unregistered types) fail with an error
// wrapping ErrEncode. Like gob, it reads a pointer back as the value it
// pointed to.
//
// Strings and byte slices are stored as the tag and the raw bytes, so other
// services reading the session through the mesh can read them too.
type TypedCodec struct{}

// Type tags of TypedCodec. They are part of the stored format: never
// renumber them.
const (
	tagNil     byte = 0x00
	tagString  byte = 0x01
	tagBytes   byte = 0x02
	tagBool    byte = 0x03
	tagInt     byte = 0x04
	tagInt64   byte = 0x05
	tagInt32   byte = 0x06
	tagFloat64 byte = 0x07
	tagTime    byte = 0x08
	tagGob     byte = 0x7f
)

// Encode implements Codec.
func (TypedCodec) Encode(v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return []byte{tagNil}, nil
	case string:
		return append([]byte{tagString}, x...), nil
	case []byte:
		return append([]byte{tagBytes}, x...), nil
	case bool:
		if x {
			return []byte{tagBool, 1}, nil
		}
		return []byte{tagBool, 0}, nil
	case int:
		return binary.AppendVarint([]byte{tagInt}, int64(x)), nil
	case int64:
		return binary.AppendVarint([]byte{tagInt64}, x), nil
	case int32:
		return binary.AppendVarint([]byte{tagInt32}, int64(x)), nil
	case float64:
		return binary.BigEndian.AppendUint64([]byte{tagFloat64}, math.Float64bits(x)), nil
	case time.Time:
		b, err := x.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrEncode, err)
		}
		return append([]byte{tagTime}, b...), nil
	}
	var buf bytes.Buffer
	buf.WriteByte(tagGob)
	if err := gob.NewEncoder(&buf).Encode(&gobValue{V: v}); err != nil {
		return nil, fmt.Errorf("%w: %T through encoding/gob (register the type with gob.Register): %v", ErrEncode, v, err)
	}
	return buf.Bytes(), nil
}

// gobValue carries a value of any registered type through encoding/gob.
type gobValue struct{ V any }

// Decode implements Codec.
func (TypedCodec) Decode(data []byte) (any, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrDecode)
	}
	tag, p := data[0], data[1:]
	switch tag {
	case tagNil:
		if len(p) == 0 {
			return nil, nil
		}
	case tagString:
		return string(p), nil
	case tagBytes:
		return bytes.Clone(p), nil
	case tagBool:
		if len(p) == 1 && p[0] <= 1 {
			return p[0] == 1, nil
		}
	case tagInt, tagInt64, tagInt32:
		x, n := binary.Varint(p)
		if n <= 0 || n != len(p) {
			break
		}
		switch tag {
		case tagInt:
			if int64(int(x)) == x {
				return int(x), nil
			}
		case tagInt64:
			return x, nil
		case tagInt32:
			if x >= math.MinInt32 && x <= math.MaxInt32 {
				return int32(x), nil
			}
		}
	case tagFloat64:
		if len(p) == 8 {
			return math.Float64frombits(binary.BigEndian.Uint64(p)), nil
		}
	case tagTime:
		var t time.Time
		if err := t.UnmarshalBinary(p); err != nil {
			return nil, fmt.Errorf("%w: time: %v", ErrDecode, err)
		}
		return t, nil
	case tagGob:
		var g gobValue
		if err := gob.NewDecoder(bytes.NewReader(p)).Decode(&g); err != nil {
			return nil, fmt.Errorf("%w: gob: %v", ErrDecode, err)
		}
		return g.V, nil
	default:
		return nil, fmt.Errorf("%w: unknown type tag %#x", ErrDecode, tag)
	}
	return nil, fmt.Errorf("%w: malformed payload for type tag %#x", ErrDecode, tag)
}

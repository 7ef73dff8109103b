package daemon

import "testing"

func TestCheckStrictJSON(t *testing.T) {
	for _, ok := range []string{
		`{}`, ` {"a": "b"} `, `{"set": {"\ud83d\ude00": "smile", "a\"b": "q"}, "remove": ["x", "x"]}`,
		`{"a": {"b": 1}, "c": {"b": [true, null, -1.5e3, {"b": 2}]}}`, `{"k": "\\ud800"}`,
	} {
		if err := checkStrictJSON([]byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{
		`null`, `[]`, `"s"`, `{"a": 1, "a": 2}`, `{"x": {"a": 1, "b": {}, "a": 2}}`, `{"a": [{"k": 1, "k": 1}]}`,
		`{"\ud800": 1}`, `{"k": "\udfff"}`, `{"k": "\ud800\u0041"}`, `{"k": "x\ud800"}`,
	} {
		if err := checkStrictJSON([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

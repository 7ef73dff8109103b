package simulations

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// lineRef matches what yaml.v3 (and Duration.UnmarshalYAML) put before
// each error: the line only, which in a file of flow-style lists does not
// say which field is wrong.
var lineRef = regexp.MustCompile(`line (\d+): ([^\n]*)`)

// quoted finds the offending value an error message quotes: yaml.v3 puts
// it in backquotes, Duration in double quotes, "field X not found" bare.
var quoted = regexp.MustCompile("`([^`]*)`" + `|"((?:[^"\\]|\\.)*)"|field (\S+) not found`)

// withPaths adds the path of the offending field to each "line N:" of a
// decoding error (nodes[0].count, faults[3].to), found in the document's
// node tree. A message it cannot place is left as it was.
func withPaths(msg string, data []byte) string {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return msg
	}
	at := map[int][]yamlSpot{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
			return
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				at[k.Line] = append(at[k.Line], yamlSpot{p, k.Value, true})
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		}
		if path != "" {
			at[n.Line] = append(at[n.Line], yamlSpot{path, n.Value, false})
		}
	}
	walk(&root, "")
	return lineRef.ReplaceAllStringFunc(msg, func(m string) string {
		parts := lineRef.FindStringSubmatch(m)
		line, _ := strconv.Atoi(parts[1])
		spots := at[line]
		if len(spots) == 0 {
			return m
		}
		path := ""
		if q := quoted.FindStringSubmatch(parts[2]); q != nil {
			want, key := q[1], false
			switch {
			case q[2] != "":
				want, _ = strconv.Unquote(`"` + q[2] + `"`)
			case q[3] != "":
				want, key = q[3], true
			}
			for _, s := range spots {
				if s.value == want && s.key == key {
					path = s.path
					break
				}
			}
		}
		if path == "" {
			path = commonPath(spots)
		}
		if path == "" {
			return m
		}
		return fmt.Sprintf("line %d, %s: %s", line, path, parts[2])
	})
}

// yamlSpot is a key or a value of the document: where it is and what it
// says.
type yamlSpot struct {
	path  string
	value string
	key   bool
}

// commonPath is the longest path that all the spots of a line lie under
// (a whole flow-style list item when the message does not say which of
// its fields is wrong).
func commonPath(spots []yamlSpot) string {
	common := spots[0].path
	for _, s := range spots[1:] {
		for common != "" && s.path != common && !strings.HasPrefix(s.path, common+".") && !strings.HasPrefix(s.path, common+"[") {
			cut := max(strings.LastIndexByte(common, '.'), strings.LastIndexByte(common, '['))
			if cut < 0 {
				common = ""
				break
			}
			common = common[:cut]
		}
	}
	return common
}

package load

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Source is where a document came from: its file, the line it starts on, and
// the line of each field it sets, so later stages (admission) can point at
// the exact line of the field they reject.
type Source struct {
	File  string
	Line  int
	lines map[string]int
}

// LineOf returns the line of a field path such as spec.resources.cpu or
// spec.access[1].clusterRole, or of its nearest ancestor that is present,
// or of the document.
func (s Source) LineOf(field string) int {
	for field != "" {
		if l, ok := s.lines[field]; ok {
			return l
		}
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			break
		}
		field = field[:i]
	}
	return s.Line
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	yamlLineRE      = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// yamlError turns a yaml parse error into a problem, keeping its line.
func yamlError(file string, err error) Problem {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return problemf(file, line, "document", "not valid YAML: %s", m[2])
	}
	return problemf(file, 0, "document", "not valid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

// splitDocuments parses every YAML document of a file. Empty documents are
// dropped. A syntax error ends the file: YAML cannot resynchronise after it.
func splitDocuments(file string, data []byte) ([]*yaml.Node, []Problem) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if err != nil {
			if err.Error() == "EOF" {
				return docs, nil
			}
			return docs, []Problem{yamlError(file, err)}
		}
		if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
			root := n.Content[0]
			if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
				continue
			}
			docs = append(docs, root)
		}
	}
}

// field returns the value node of key in a mapping node, and its key node.
func field(m *yaml.Node, key string) (k, v *yaml.Node) {
	if m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// strictDecoder checks a YAML node against a Go type field by field, so an
// unknown field or a wrong type is reported with its path and line, then
// decodes it.
type strictDecoder struct {
	file     string
	lines    map[string]int
	problems []Problem
	// allowed restricts the fields accepted at a path (for metadata, where
	// warren reads only a few of ObjectMeta's fields).
	allowed map[string][]string
	// drop holds the value nodes that failed their check; decoding leaves
	// them out so that the rest of the document can still be validated.
	drop map[*yaml.Node]bool
	// visited counts nodes checked, aliases expanded, to stop documents
	// whose aliases multiply into millions of nodes.
	visited  int
	tooLarge bool
}

// maxNodes bounds the nodes of one document, aliases expanded.
const maxNodes = 100000

// maxProblems bounds the problems reported for one document.
const maxProblems = 50

func (d *strictDecoder) add(line int, path, format string, args ...any) {
	switch {
	case len(d.problems) < maxProblems:
		d.problems = append(d.problems, problemf(d.file, line, path, format, args...))
	case len(d.problems) == maxProblems:
		d.problems = append(d.problems, problemf(d.file, line, "document", "more than %d problems; fix these first", maxProblems))
	}
}

// fail reports a problem with node n and leaves n out of decoding.
func (d *strictDecoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.drop[n] = true
	d.add(n.Line, path, format, args...)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!str":
		return fmt.Sprintf("the string %q", n.Value)
	case "!!bool":
		return "a boolean"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	}
	return fmt.Sprintf("%q", n.Value)
}

// jsonFields maps a struct's JSON field names (following inline embedding)
// to their types.
func jsonFields(t reflect.Type, into map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && (name == "" || strings.Contains(","+opts+",", ",inline,")) {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && name == "" {
				jsonFields(ft, into)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		into[name] = f.Type
	}
}

// check walks node n against type t at path.
func (d *strictDecoder) check(n *yaml.Node, t reflect.Type, path string) {
	if !d.visit(n) {
		return
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
	case reflect.PointerTo(t).Implements(jsonUnmarshaler):
		d.checkJSONValue(n, t, path)
	case t.Kind() == reflect.Struct:
		d.checkStruct(n, t, path)
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "must be a mapping, found %s", kindName(n))
			return
		}
		d.checkMapping(n, path, func(string) (reflect.Type, bool) { return t.Elem(), true }, nil)
	case t.Kind() == reflect.Slice:
		d.checkList(n, t, path)
	default:
		d.checkScalar(n, t, path)
	}
}

// visit counts a node, and says false (once, with a problem) when the
// document has more values than maxNodes once aliases are expanded.
func (d *strictDecoder) visit(n *yaml.Node) bool {
	d.visited++
	if d.visited <= maxNodes {
		return true
	}
	if !d.tooLarge {
		d.tooLarge = true
		d.add(n.Line, "document", "more than %d values once YAML aliases are expanded", maxNodes)
	}
	return false
}

// checkJSONValue checks a single value of a type that decodes itself
// (a quantity, a time, an IntOrString).
func (d *strictDecoder) checkJSONValue(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "must be a single value, found %s", kindName(n))
		return
	}
	raw, err := scalarJSON(n)
	if err == nil {
		err = reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(raw)
	}
	if err != nil {
		d.fail(n, path, "invalid value %q: %v", n.Value, err)
	}
}

// checkStruct checks a mapping against a struct's JSON fields (or, where
// the path allows only some, those).
func (d *strictDecoder) checkStruct(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "must be a mapping, found %s", kindName(n))
		return
	}
	fields := map[string]reflect.Type{}
	jsonFields(t, fields)
	if only, ok := d.allowed[path]; ok {
		restricted := map[string]reflect.Type{}
		for _, k := range only {
			restricted[k] = fields[k]
		}
		fields = restricted
	}
	d.checkMapping(n, path, func(key string) (reflect.Type, bool) {
		ft, ok := fields[key]
		return ft, ok
	}, fields)
}

// checkList checks each item of a sequence.
func (d *strictDecoder) checkList(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "must be a list, found %s", kindName(n))
		return
	}
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		d.lines[p] = item.Line
		d.check(item, t.Elem(), p)
	}
}

// checkScalar checks a string, boolean or integer.
func (d *strictDecoder) checkScalar(n *yaml.Node, t reflect.Type, path string) {
	switch t.Kind() {
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			d.fail(n, path, "must be a string, found %s (quote it if it is meant as text)", kindName(n))
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.fail(n, path, "must be true or false, found %s", kindName(n))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			d.fail(n, path, "must be an integer, found %s", kindName(n))
			return
		}
		if _, err := strconv.ParseInt(n.Value, 0, 32); err != nil && t.Size() <= 4 {
			d.fail(n, path, "integer %s is out of range", n.Value)
		}
	}
}

func (d *strictDecoder) checkMapping(n *yaml.Node, path string, typeOf func(string) (reflect.Type, bool), known map[string]reflect.Type) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.drop[v] = true
			d.add(k.Line, path, "keys must be plain strings, found %s", kindName(k))
			continue
		}
		if k.Value == "<<" {
			d.drop[v] = true
			d.add(k.Line, path, "YAML merge keys (<<) are not supported; write the fields out")
			continue
		}
		name := k.Value
		if name == "" {
			name = `""`
		}
		p := join(path, name)
		if first, dup := seen[k.Value]; dup {
			d.drop[v] = true
			d.add(k.Line, p, "set twice (first on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		d.lines[p] = k.Line
		ft, ok := typeOf(k.Value)
		if !ok {
			d.drop[v] = true
			d.add(k.Line, p, "unknown field%s", suggest(k.Value, known))
			continue
		}
		d.check(v, ft, p)
	}
}

// suggest names the known fields, to help with a typo.
func suggest(got string, known map[string]reflect.Type) string {
	if len(known) == 0 {
		return ""
	}
	names := make([]string, 0, len(known))
	for k := range known {
		if strings.EqualFold(k, got) {
			return fmt.Sprintf(" (did you mean %q?)", k)
		}
		names = append(names, k)
	}
	sort.Strings(names)
	return " (known fields: " + strings.Join(names, ", ") + ")"
}

// scalarJSON renders a scalar node as a JSON value.
func scalarJSON(n *yaml.Node) ([]byte, error) {
	switch n.ShortTag() {
	case "!!null":
		return []byte("null"), nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, err
		}
		return json.Marshal(b)
	case "!!int":
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err != nil {
			return nil, err
		}
		return json.Marshal(i)
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, err
		}
		return json.Marshal(f)
	default:
		return json.Marshal(n.Value)
	}
}

// toJSON converts a checked node tree to JSON.
func toJSON(n *yaml.Node, drop map[*yaml.Node]bool) ([]byte, error) {
	var buf bytes.Buffer
	if err := writeJSON(&buf, n, drop, 0); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeJSON(buf *bytes.Buffer, n *yaml.Node, drop map[*yaml.Node]bool, depth int) error {
	if depth > 100 {
		return fmt.Errorf("nesting deeper than 100 levels")
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		buf.WriteByte('{')
		first := true
		for i := 0; i+1 < len(n.Content); i += 2 {
			if drop[n.Content[i+1]] {
				continue
			}
			if !first {
				buf.WriteByte(',')
			}
			first = false
			k, _ := json.Marshal(n.Content[i].Value)
			buf.Write(k)
			buf.WriteByte(':')
			if err := writeJSON(buf, n.Content[i+1], drop, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case yaml.SequenceNode:
		buf.WriteByte('[')
		first := true
		for _, c := range n.Content {
			if drop[c] {
				continue
			}
			if !first {
				buf.WriteByte(',')
			}
			first = false
			if err := writeJSON(buf, c, drop, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	default:
		raw, err := scalarJSON(n)
		if err != nil {
			return err
		}
		buf.Write(raw)
	}
	return nil
}

// decodeStrict checks node against out's type and decodes into out every
// field that passed its check, so the document can still be validated. It
// returns the field line index and the problems found.
func decodeStrict(file string, node *yaml.Node, out any, allowed map[string][]string) (map[string]int, []Problem) {
	d := &strictDecoder{file: file, lines: map[string]int{}, allowed: allowed, drop: map[*yaml.Node]bool{}}
	d.check(node, reflect.TypeOf(out).Elem(), "")
	if d.tooLarge {
		return d.lines, d.problems
	}
	raw, err := toJSON(node, d.drop)
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		err = dec.Decode(out)
	}
	if err != nil {
		d.problems = append(d.problems, problemf(file, node.Line, "document", "cannot decode: %v", err))
	}
	return d.lines, d.problems
}

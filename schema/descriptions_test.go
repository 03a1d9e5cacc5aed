package schema

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDescriptionsMatchSchema parses fbs/*.fbs (the subset of the grammar
// they use) and checks that the verifier's hand-written descriptions list
// the same fields, in the same slots, with the same kinds, sizes and
// required flags. It keeps the verifier in step with the schemas.
func TestDescriptionsMatchSchema(t *testing.T) {
	var src strings.Builder
	for _, f := range []string{"fbs/batch.fbs", "fbs/wire.fbs"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
		src.WriteByte('\n')
	}
	s := regexp.MustCompile(`//[^\n]*`).ReplaceAllString(src.String(), "")
	decl := regexp.MustCompile(`(?s)\b(table|struct|enum|union)\s+(\w+)\s*(?::\s*(\w+))?\s*\{(.*?)\}`)

	scalarSize := map[string]uint32{"bool": 1, "byte": 1, "ubyte": 1, "short": 2, "ushort": 2,
		"int": 4, "uint": 4, "float": 4, "long": 8, "ulong": 8, "double": 8}
	type structInfo struct{ size, align uint32 }
	structs := map[string]structInfo{}
	tables := map[string]string{} // name -> body
	unions := map[string][]string{}
	var tableOrder []string
	for _, m := range decl.FindAllStringSubmatch(s, -1) {
		kind, name, base, body := m[1], m[2], m[3], m[4]
		switch kind {
		case "enum":
			scalarSize[name] = scalarSize[base]
		case "union":
			for _, mem := range strings.Split(body, ",") {
				if mem = strings.TrimSpace(mem); mem != "" {
					unions[name] = append(unions[name], mem)
				}
			}
		case "struct":
			var size, align uint32
			for _, fl := range strings.Split(body, ";") {
				if parts := strings.SplitN(fl, ":", 2); len(parts) == 2 {
					sz := scalarSize[strings.TrimSpace(parts[1])]
					size += sz
					align = max(align, sz)
				}
			}
			structs[name] = structInfo{size, align}
		case "table":
			tables[name] = body
			tableOrder = append(tableOrder, name)
		}
	}

	descs := map[string]*tableDesc{}
	var collect func(d *tableDesc)
	collect = func(d *tableDesc) {
		if descs[d.name] != nil {
			return
		}
		descs[d.name] = d
		for _, f := range d.fields {
			if f.table != nil {
				collect(f.table)
			}
			if f.union != nil {
				for _, m := range f.union.members {
					collect(m)
				}
			}
		}
	}
	collect(descRecordBatchBody)
	collect(descEnvelope)

	fieldRe := regexp.MustCompile(`^\s*(\w+)\s*:\s*(\[?\w+\]?)\s*(?:=\s*[-\w.]+)?\s*(\(.*\))?\s*$`)
	for _, name := range tableOrder {
		d := descs[name]
		if d == nil {
			t.Errorf("table %s has no verifier description reachable from a root", name)
			continue
		}
		var want []field
		for _, fl := range strings.Split(tables[name], ";") {
			if strings.TrimSpace(fl) == "" {
				continue
			}
			m := fieldRe.FindStringSubmatch(fl)
			if m == nil {
				t.Fatalf("%s: cannot parse field %q", name, fl)
			}
			fname, typ, attrs := m[1], m[2], m[3]
			f := field{name: fname, required: strings.Contains(attrs, "required")}
			elem := strings.Trim(typ, "[]")
			vector := strings.HasPrefix(typ, "[")
			switch {
			case unions[elem] != nil:
				want = append(want, field{name: fname + "_type", kind: kindUnionType, size: 1, align: 1})
				f.kind = kindUnionValue
			case vector && elem == "string":
				f.kind = kindStringVector
			case vector && structs[elem].size > 0:
				f.kind, f.size, f.align = kindStructVector, structs[elem].size, structs[elem].align
			case vector && scalarSize[elem] > 0:
				f.kind, f.size, f.align = kindScalarVector, scalarSize[elem], scalarSize[elem]
			case vector:
				f.kind = kindTableVector
			case elem == "string":
				f.kind = kindString
			case structs[elem].size > 0:
				f.kind, f.size, f.align = kindStruct, structs[elem].size, structs[elem].align
			case scalarSize[elem] > 0:
				f.kind, f.size, f.align = kindScalar, scalarSize[elem], scalarSize[elem]
			default:
				f.kind = kindTable
			}
			if f.kind == kindTable || f.kind == kindTableVector {
				f.union = nil
				f.table = &tableDesc{name: elem}
			}
			if f.kind == kindUnionValue {
				f.union = &unionDesc{name: elem}
				for _, mem := range unions[elem] {
					f.union.members = append(f.union.members, &tableDesc{name: mem})
				}
			}
			want = append(want, f)
		}
		if len(want) != len(d.fields) {
			t.Errorf("%s: schema has %d slots, description %d", name, len(want), len(d.fields))
			continue
		}
		for i, w := range want {
			g := d.fields[i]
			if g.name != w.name || g.kind != w.kind || g.size != w.size || g.align != w.align || g.required != w.required {
				t.Errorf("%s slot %d: description %+v, schema %+v", name, i, g, w)
			}
			if w.table != nil && (g.table == nil || g.table.name != w.table.name) {
				t.Errorf("%s.%s: points to the wrong table", name, w.name)
			}
			if w.union != nil {
				if g.union == nil || len(g.union.members) != len(w.union.members) {
					t.Errorf("%s.%s: union members differ", name, w.name)
					continue
				}
				for j := range w.union.members {
					if g.union.members[j].name != w.union.members[j].name {
						t.Errorf("%s.%s: member %d is %s, schema says %s", name, w.name, j+1, g.union.members[j].name, w.union.members[j].name)
					}
				}
			}
		}
	}
	if len(descs) != len(tables) {
		t.Errorf("%d descriptions for %d tables", len(descs), len(tables))
	}
}

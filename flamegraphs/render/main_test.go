package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/pprof/profile"
)

// testProfile has two stacks: main -> a -> b (3 samples' worth) and
// main -> a (inlined c, 2), and a zero sample that must not count.
func testProfile() *profile.Profile {
	fn := func(id uint64, name string) *profile.Function { return &profile.Function{ID: id, Name: name} }
	fMain, fA, fB, fC := fn(1, "main"), fn(2, "a"), fn(3, "b"), fn(4, "c")
	loc := func(id uint64, fns ...*profile.Function) *profile.Location {
		l := &profile.Location{ID: id}
		for _, f := range fns {
			l.Line = append(l.Line, profile.Line{Function: f})
		}
		return l
	}
	lMain, lA, lB, lAC := loc(1, fMain), loc(2, fA), loc(3, fB), loc(4, fC, fA) // c inlined into a
	return &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		Sample: []*profile.Sample{
			{Location: []*profile.Location{lB, lA, lMain}, Value: []int64{3, 300}},
			{Location: []*profile.Location{lAC, lMain}, Value: []int64{2, 200}},
			{Location: []*profile.Location{lA, lMain}, Value: []int64{0, 0}},
		},
		Function: []*profile.Function{fMain, fA, fB, fC},
		Location: []*profile.Location{lMain, lA, lB, lAC},
	}
}

func TestBuildTreeFoldsStacks(t *testing.T) {
	root, unit, err := buildTree(testProfile(), -1)
	if err != nil {
		t.Fatal(err)
	}
	if unit != "cpu/nanoseconds" || root.Value != 500 {
		t.Fatalf("unit %q total %d", unit, root.Value)
	}
	main := root.Children[0]
	if main.Name != "main" || main.Value != 500 || len(main.Children) != 1 {
		t.Fatalf("main: %+v", main)
	}
	a := main.Children[0]
	if a.Name != "a" || a.Value != 500 || len(a.Children) != 2 {
		t.Fatalf("a: %+v", a)
	}
	if a.Children[0].Name != "b" || a.Children[0].Value != 300 || a.Children[1].Name != "c" || a.Children[1].Value != 200 {
		t.Fatalf("a's children: %+v %+v", a.Children[0], a.Children[1])
	}
	if _, _, err := buildTree(testProfile(), 5); err == nil {
		t.Fatal("out-of-range sample index accepted")
	}
}

func TestWriteHTMLIsSelfContained(t *testing.T) {
	root, unit, _ := buildTree(testProfile(), 1)
	var buf bytes.Buffer
	assets := map[string]string{"d3": "/*D3*/", "flamegraph": "/*FG*/", "tooltip": "/*TT*/", "css": ".x{}"}
	if err := writeHTML(&buf, "t <1>", unit, root, assets); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, want := range []string{"/*D3*/", "/*FG*/", "/*TT*/", ".x{}", "t &lt;1&gt;", `"name":"main"`} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(html, "src=\"http") {
		t.Error("page loads something from the network")
	}
	start := strings.Index(html, "const data = ") + len("const data = ")
	end := strings.Index(html[start:], ";\n")
	var back node
	if err := json.Unmarshal([]byte(html[start:start+end]), &back); err != nil || back.Value != 500 {
		t.Fatalf("embedded data: %v %+v", err, back)
	}
}

func TestShortNamesAndSeconds(t *testing.T) {
	for in, want := range map[string]string{
		"github.com/strata-db/strata/server.(*Shard).loop":            "server.(*Shard).loop",
		"golang.org/x/sys/unix.Syscall6":                              "unix.Syscall6",
		"runtime.mallocgc":                                            "runtime.mallocgc",
		"example.com/m/p.F[go.shape.*example.com/m/q.T]":              "p.F[go.shape.*example.com/m/q.T]",
		"github.com/strata-db/strata/server.(*fetchJob).answer.func1": "server.(*fetchJob).answer.func1",
	} {
		if got := shortName(in); got != want {
			t.Errorf("shortName(%q) = %q, want %q", in, got, want)
		}
	}
	if got := totalText("cpu/nanoseconds", 12_345_000_000); got != "12.35 s of CPU" {
		t.Errorf("cpu total %q", got)
	}
	if got := totalText("samples/count", 7); got != "7 (samples/count)" {
		t.Errorf("count total %q", got)
	}
}

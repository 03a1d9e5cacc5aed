// Command render turns a pprof profile into a flame graph: one
// self-contained HTML file (d3-flame-graph and d3 inlined, the profile's
// stacks as JSON) that a person opens in a browser with no network.
//
//	go run ./flamegraphs/render -profile cpu.pprof -assets node_modules \
//	    -title "strata produce 1 KiB" -o flamegraphs/<commit>-produce.html
//
// -assets is a node_modules folder holding d3 (7.x) and d3-flame-graph
// (4.x); scripts/flamegraph.sh installs them from npm into a cache folder.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/pprof/profile"
)

func main() {
	profPath := flag.String("profile", "", "pprof profile to render (CPU or any sampled profile)")
	assets := flag.String("assets", "", "node_modules folder with d3 and d3-flame-graph")
	title := flag.String("title", "Strata flame graph", "title shown above the graph")
	out := flag.String("o", "", "output HTML file")
	sampleIndex := flag.Int("sample", -1, "sample type index (-1: the last, cpu nanoseconds for a CPU profile)")
	flag.Parse()
	if *profPath == "" || *assets == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "render: -profile, -assets and -o are required")
		os.Exit(2)
	}
	if err := run(*profPath, *assets, *title, *out, *sampleIndex); err != nil {
		fmt.Fprintf(os.Stderr, "render: %v\n", err)
		os.Exit(1)
	}
}

func run(profPath, assets, title, out string, sampleIndex int) error {
	f, err := os.Open(profPath)
	if err != nil {
		return err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return fmt.Errorf("parse %s: %w", profPath, err)
	}
	root, unit, err := buildTree(p, sampleIndex)
	if err != nil {
		return err
	}
	js := map[string]string{}
	for key, rel := range map[string]string{
		"d3":         "d3/dist/d3.min.js",
		"flamegraph": "d3-flame-graph/dist/d3-flamegraph.min.js",
		"tooltip":    "d3-flame-graph/dist/d3-flamegraph-tooltip.min.js",
		"css":        "d3-flame-graph/dist/d3-flamegraph.css",
	} {
		b, err := os.ReadFile(filepath.Join(assets, rel))
		if err != nil {
			return fmt.Errorf("asset %s: %w", rel, err)
		}
		js[key] = string(b)
	}
	w, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := writeHTML(w, title, unit, root, js); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// node is one frame of the flame graph in d3-flame-graph's format.
type node struct {
	Name     string  `json:"name"`
	Value    int64   `json:"value"`
	Children []*node `json:"children,omitempty"`
	index    map[string]*node
}

func (n *node) child(name string) *node {
	if n.index == nil {
		n.index = map[string]*node{}
	}
	c := n.index[name]
	if c == nil {
		c = &node{Name: name}
		n.index[name] = c
		n.Children = append(n.Children, c)
	}
	return c
}

// buildTree folds the profile's samples into a tree rooted at "all": each
// sample's stack from its outermost frame inwards (inlined frames included),
// weighted by the chosen sample value.
func buildTree(p *profile.Profile, sampleIndex int) (*node, string, error) {
	if len(p.SampleType) == 0 {
		return nil, "", fmt.Errorf("profile has no sample types")
	}
	if sampleIndex < 0 {
		sampleIndex = len(p.SampleType) - 1
	}
	if sampleIndex >= len(p.SampleType) {
		return nil, "", fmt.Errorf("sample index %d: the profile has %d sample types", sampleIndex, len(p.SampleType))
	}
	st := p.SampleType[sampleIndex]
	root := &node{Name: "all"}
	for _, s := range p.Sample {
		v := s.Value[sampleIndex]
		if v == 0 {
			continue
		}
		root.Value += v
		n := root
		// Locations run innermost first; each may hold inlined lines,
		// also innermost first.
		for i := len(s.Location) - 1; i >= 0; i-- {
			loc := s.Location[i]
			for j := len(loc.Line) - 1; j >= 0; j-- {
				name := "?"
				if fn := loc.Line[j].Function; fn != nil {
					name = shortName(fn.Name)
				}
				n = n.child(name)
				n.Value += v
			}
			if len(loc.Line) == 0 {
				n = n.child(fmt.Sprintf("%#x", loc.Address))
				n.Value += v
			}
		}
	}
	sortTree(root)
	return root, st.Type + "/" + st.Unit, nil
}

// shortName drops a function's import path up to its package name
// ("github.com/strata-db/strata/server.(*Shard).loop" reads
// "server.(*Shard).loop"), so a narrow frame still shows what it is. A '/'
// inside type parameters or a receiver is not part of the path.
func shortName(name string) string {
	end := len(name)
	if i := strings.IndexAny(name, "[("); i >= 0 {
		end = i
	}
	if i := strings.LastIndexByte(name[:end], '/'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// totalText is the header's total: seconds for a CPU profile in
// nanoseconds, the sum in the profile's unit otherwise.
func totalText(unit string, total int64) string {
	if unit == "cpu/nanoseconds" {
		return fmt.Sprintf("%.2f s of CPU", float64(total)/1e9)
	}
	return fmt.Sprintf("%d (%s)", total, unit)
}

// sortTree orders children by name so the same profile renders the same.
func sortTree(n *node) {
	sort.Slice(n.Children, func(i, j int) bool { return n.Children[i].Name < n.Children[j].Name })
	for _, c := range n.Children {
		sortTree(c)
	}
}

var page = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>{{.CSS}}
body { font-family: sans-serif; margin: 1em; } #chart { width: 100%; }</style>
<script>{{.D3}}</script>
<script>{{.Flamegraph}}</script>
<script>{{.Tooltip}}</script>
</head><body>
<h2>{{.Title}}</h2>
<p>Total: {{.Total}}; frames are sized by {{.Unit}}. Click a frame to zoom, click the root to reset.</p>
<div id="chart"></div>
<script>
const data = {{.Data}};
const chart = flamegraph().width(document.getElementById("chart").clientWidth || 1200)
  .cellHeight(18).minFrameSize(1).tooltip(flamegraph.tooltip.defaultFlamegraphTooltip());
d3.select("#chart").datum(data).call(chart);
</script>
</body></html>
`))

func writeHTML(w io.Writer, title, unit string, root *node, assets map[string]string) error {
	data, err := json.Marshal(root)
	if err != nil {
		return err
	}
	return page.Execute(w, map[string]any{
		"Title": title, "Unit": unit, "Total": totalText(unit, root.Value),
		"CSS":        template.CSS(assets["css"]),
		"D3":         template.JS(assets["d3"]),
		"Flamegraph": template.JS(assets["flamegraph"]),
		"Tooltip":    template.JS(assets["tooltip"]),
		"Data":       template.JS(data),
	})
}

package metadata

import (
	"os"
	"strings"
	"testing"
)

// TestConfigurationDocListsEveryKey: docs/configuration.md has an entry
// for every topic config key, and the default it gives is the one the
// broker applies and DescribeConfigs shows.
func TestConfigurationDocListsEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	if len(configDefaults) != len(configSpecs) || len(configSpecs) != numConfigKeys {
		t.Fatalf("%d defaults, %d specs, numConfigKeys %d", len(configDefaults), len(configSpecs), numConfigKeys)
	}
	for _, k := range TopicConfigKeys() {
		head := "### `" + k + "`\n"
		i := strings.Index(text, head)
		if i < 0 {
			t.Errorf("%s: no entry", k)
			continue
		}
		entry := text[i+len(head):]
		if j := strings.Index(entry, "\n### "); j >= 0 {
			entry = entry[:j]
		}
		_, line, ok := strings.Cut(entry, "- Default: ")
		if !ok {
			t.Errorf("%s: no default line", k)
			continue
		}
		line, _, _ = strings.Cut(line, "\n")
		got := strings.Trim(strings.Fields(line)[0], "`")
		want, _ := TopicConfigDefault(k)
		if got != want {
			t.Errorf("%s: the doc's default is %q, the broker's %q", k, got, want)
		}
		if n, err := normalizeConfig(k, want); err != nil || n != want {
			t.Errorf("%s: default %q is not an accepted value in normal form: %q, %v", k, want, n, err)
		}
	}
}

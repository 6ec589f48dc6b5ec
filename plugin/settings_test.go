package plugin

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/dmsize/dmsize/guard"
)

var update = flag.Bool("update", false, "write config.json's env and the README's settings rows from the settings table")

// envEntry is a setting as config.json declares it to the engine.
type envEntry struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Settable    []string `json:"settable"`
	Value       string   `json:"value"`
}

// configEnv is the env array config.json should have: every setting an operator sets.
func configEnv() []envEntry {
	var env []envEntry
	for _, s := range settings {
		if !s.Internal {
			env = append(env, envEntry{s.Name, s.Help, []string{"value"}, s.Default})
		}
	}
	return env
}

// readmeRows are the rows of the README's settings table that come from the table.
func readmeRows() string {
	var b strings.Builder
	for _, s := range settings {
		if s.Internal {
			continue
		}
		def := "(empty)"
		if s.Default != "" {
			def = "`" + s.Default + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", s.Name, def, s.Help)
	}
	return b.String()
}

// The README's rows of settings: those that follow its table's header and name an environment
// variable (the mount rows after them are not settings of this table).
var readmeSettings = regexp.MustCompile("(?m)(\\| setting \\| default \\| meaning \\|\n\\| --- \\| --- \\| --- \\|\n)((?:\\| `[A-Z_]+` \\|.*\n)*)")

// TestSettingsAreTheOneSource: config.json's env and the README's settings table say what the
// settings table says, in its order, and the table's defaults are the guard's. With -update
// it writes both instead.
func TestSettingsAreTheOneSource(t *testing.T) {
	raw, err := os.ReadFile("../config.json")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("  ", "  ")
	if err := enc.Encode(configEnv()); err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(raw, []byte(`  "env": `))
	if i < 0 {
		t.Fatal("config.json: no env")
	}
	wantConfig := append(append([]byte{}, raw[:i]...), `  "env": `+strings.TrimRight(buf.String(), "\n")+"\n}\n"...)
	m := readmeSettings.FindSubmatchIndex(readme)
	if m == nil {
		t.Fatal("README.md: no settings table (| setting | default | meaning |)")
	}
	wantReadme := append(append(append([]byte{}, readme[:m[4]]...), readmeRows()...), readme[m[5]:]...)
	if *update {
		for path, b := range map[string][]byte{"../config.json": wantConfig, "../README.md": wantReadme} {
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	var got struct{ Env []envEntry }
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Env, configEnv()) {
		t.Errorf("config.json's env is not the settings table's (go test ./plugin -run TestSettingsAreTheOneSource -update writes it):\n got  %+v\n want %+v", got.Env, configEnv())
	}
	if !bytes.Equal(readme, wantReadme) {
		t.Errorf("README.md's settings rows are not the settings table's (-update writes them); want:\n%s", readmeRows())
	}
	c, err := loadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Guard, guard.DefaultPolicy()) {
		t.Errorf("the table's guard defaults %+v are not guard.DefaultPolicy() %+v", c.Guard, guard.DefaultPolicy())
	}
	seen := map[string]bool{}
	for _, s := range settings {
		if seen[s.Name] || s.apply == nil || s.Help == "" {
			t.Errorf("setting %s: twice, or without apply or help", s.Name)
		}
		seen[s.Name] = true
	}
}

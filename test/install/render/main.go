// Command render renders a Helm chart the way `helm template` does, for tests on machines where
// Helm itself cannot be installed. It uses the engine Helm uses — Go's text/template with the sprig
// function map — plus the functions Helm adds (include, tpl, required, toYaml, fromYaml, toJson,
// fromJson, lookup …), Helm's value coalescing (user files deep-merged over values.yaml, null
// deletes a key) and Helm's output format (`---` and a `# Source:` comment per template).
//
// Build offline in GOPATH mode against Debian's packages (golang-go,
// golang-github-masterminds-sprig-dev, golang-github-ghodss-yaml-dev):
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o render ./test/install/render
//
// Usage:
//
//	render [-name RELEASE] [-namespace NS] [-f values.yaml]... [-notes] [-kube-version v1.30.0]
//	       [-api-versions group/version,...] CHART_DIR
//
// Differences from Helm that do not matter for these tests: no subcharts, no --set, no schema
// validation (the tests validate values.schema.json themselves), manifests in file-name order
// rather than Helm's kind order, and lookup always returns an empty map (as `helm template` does).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"github.com/ghodss/yaml"
)

// recursionMaxNums is Helm's limit on nested include calls.
const recursionMaxNums = 1000

// Metadata mirrors Helm's chart.Metadata, so `.Chart.X` resolves exactly as in Helm (and an
// unknown field is an error, as in Helm).
type Metadata struct {
	Name         string            `json:"name,omitempty"`
	Home         string            `json:"home,omitempty"`
	Sources      []string          `json:"sources,omitempty"`
	Version      string            `json:"version,omitempty"`
	Description  string            `json:"description,omitempty"`
	Keywords     []string          `json:"keywords,omitempty"`
	Maintainers  []interface{}     `json:"maintainers,omitempty"`
	Icon         string            `json:"icon,omitempty"`
	APIVersion   string            `json:"apiVersion,omitempty"`
	Condition    string            `json:"condition,omitempty"`
	Tags         string            `json:"tags,omitempty"`
	AppVersion   string            `json:"appVersion,omitempty"`
	Deprecated   bool              `json:"deprecated,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	KubeVersion  string            `json:"kubeVersion,omitempty"`
	Dependencies []interface{}     `json:"dependencies,omitempty"`
	Type         string            `json:"type,omitempty"`
}

// KubeVersion mirrors Helm's chartutil.KubeVersion.
type KubeVersion struct {
	Version string
	Major   string
	Minor   string
}

func (kv *KubeVersion) String() string     { return kv.Version }
func (kv *KubeVersion) GitVersion() string { return kv.Version }

// VersionSet mirrors Helm's chartutil.VersionSet.
type VersionSet []string

// Has reports whether the API version (group/version or group/version/Kind) is known.
func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

// Capabilities mirrors Helm's chartutil.Capabilities (without HelmVersion details).
type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions VersionSet
}

// Files mirrors the parts of Helm's .Files the chart may use.
type Files map[string][]byte

// Get returns a chart file's content as a string ("" when missing), like Helm.
func (f Files) Get(name string) string { return string(f[name]) }

// GetBytes returns a chart file's content.
func (f Files) GetBytes(name string) []byte { return f[name] }

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	var valueFiles multiFlag
	name := flag.String("name", "execlet", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	notes := flag.Bool("notes", false, "print the rendered NOTES.txt instead of the manifests")
	kubeVersion := flag.String("kube-version", "v1.30.0", "Kubernetes version for .Capabilities")
	apiVersions := flag.String("api-versions", "", "extra API versions for .Capabilities.APIVersions, comma-separated")
	flag.Var(&valueFiles, "f", "values file (repeatable; later files win)")
	flag.Parse()
	if flag.NArg() != 1 {
		return errors.New("usage: render [flags] CHART_DIR")
	}
	chartDir := flag.Arg(0)

	var meta Metadata
	if err := readYAML(filepath.Join(chartDir, "Chart.yaml"), &meta); err != nil {
		return err
	}
	if meta.Name == "" || meta.Version == "" {
		return errors.New("Chart.yaml: name and version are required")
	}

	defaults := map[string]interface{}{}
	if err := readYAML(filepath.Join(chartDir, "values.yaml"), &defaults); err != nil {
		return err
	}
	user := map[string]interface{}{}
	for _, file := range valueFiles {
		layer := map[string]interface{}{}
		if err := readYAML(file, &layer); err != nil {
			return err
		}
		user = mergeMaps(user, layer)
	}
	values := coalesce(user, defaults)

	major, minor := splitVersion(*kubeVersion)
	versions := VersionSet{"v1", "apps/v1", "networking.k8s.io/v1", "policy/v1", "rbac.authorization.k8s.io/v1"}
	if *apiVersions != "" {
		versions = append(versions, strings.Split(*apiVersions, ",")...)
	}
	top := map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{
			"Name":      *name,
			"Namespace": *namespace,
			"Revision":  1,
			"IsUpgrade": false,
			"IsInstall": true,
			"Service":   "Helm",
		},
		"Chart":        &meta,
		"Capabilities": &Capabilities{KubeVersion: KubeVersion{Version: *kubeVersion, Major: major, Minor: minor}, APIVersions: versions},
	}

	files, templates, err := loadChartFiles(chartDir, meta.Name)
	if err != nil {
		return err
	}
	top["Files"] = files

	rendered, err := render(templates, top)
	if err != nil {
		return err
	}

	notesName := meta.Name + "/templates/NOTES.txt"
	if *notes {
		fmt.Print(rendered[notesName])
		return nil
	}
	names := make([]string, 0, len(rendered))
	for n := range rendered {
		if n != notesName && !isPartial(n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var out bytes.Buffer
	for _, n := range names {
		content := rendered[n]
		if strings.TrimSpace(content) == "" {
			continue // Helm leaves out templates that render to nothing.
		}
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", n, strings.TrimRight(content, "\n"))
	}
	_, err = os.Stdout.Write(out.Bytes())
	return err
}

func readYAML(file string, into interface{}) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	// sigs.k8s.io/yaml semantics (YAML → JSON → Go), as Helm: numbers become float64.
	if err := yaml.Unmarshal(data, into); err != nil {
		return fmt.Errorf("%s: %v", file, err)
	}
	return nil
}

func splitVersion(v string) (string, string) {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return "1", "30"
	}
	return parts[0], parts[1]
}

func isPartial(name string) bool { return strings.HasPrefix(path.Base(name), "_") }

// loadChartFiles reads templates/ (as "<chart>/templates/<path>") and every other chart file
// (for .Files).
func loadChartFiles(chartDir, chartName string) (Files, map[string]string, error) {
	files := Files{}
	templates := map[string]string{}
	err := filepath.WalkDir(chartDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(chartDir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasPrefix(rel, "templates/") {
			templates[chartName+"/"+rel] = string(data)
		} else {
			files[rel] = data
		}
		return nil
	})
	return files, templates, err
}

// funcMap is sprig's text function map without env access, plus Helm's own functions.
// include and tpl are bound per render (they need the template set).
func funcMap() template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	extra := template.FuncMap{
		"toYaml":        toYAML,
		"fromYaml":      fromYAML,
		"fromYamlArray": fromYAMLArray,
		"toJson":        toJSON,
		"fromJson":      fromJSON,
		"fromJsonArray": fromJSONArray,
		"required": func(warn string, val interface{}) (interface{}, error) {
			if val == nil {
				return val, errors.New(warn)
			}
			if s, ok := val.(string); ok && s == "" {
				return val, errors.New(warn)
			}
			return val, nil
		},
		"lookup": func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
			return map[string]interface{}{}, nil
		},
		// Placeholders replaced in render().
		"include": func(string, interface{}) (string, error) { return "", nil },
		"tpl":     func(string, interface{}) (string, error) { return "", nil },
	}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return "" // Helm swallows the error here too.
	}
	return strings.TrimSuffix(string(data), "\n")
}

func fromYAML(str string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(str), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromYAMLArray(str string) []interface{} {
	a := []interface{}{}
	if err := yaml.Unmarshal([]byte(str), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func fromJSON(str string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(str), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(str string) []interface{} {
	a := []interface{}{}
	if err := json.Unmarshal([]byte(str), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

// render parses every template into one set (so named templates from _helpers.tpl are shared),
// then executes each, as Helm's engine does (missingkey=zero, "<no value>" removed).
func render(templates map[string]string, top map[string]interface{}) (map[string]string, error) {
	root := template.New("gotpl").Option("missingkey=zero")
	includedNames := map[string]int{}
	funcs := funcMap()
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf strings.Builder
		if v, ok := includedNames[name]; ok {
			if v > recursionMaxNums {
				return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
			}
			includedNames[name]++
		} else {
			includedNames[name] = 1
		}
		err := root.ExecuteTemplate(&buf, name, data)
		includedNames[name]--
		return buf.String(), err
	}
	funcs["tpl"] = func(tpl string, vals interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", fmt.Errorf("cannot clone template: %v", err)
		}
		t.Option("missingkey=zero")
		if _, err := t.New("tpl").Parse(tpl); err != nil {
			return "", fmt.Errorf("cannot parse template %q: %v", tpl, err)
		}
		var buf strings.Builder
		if err := t.ExecuteTemplate(&buf, "tpl", vals); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %v", tpl, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	root.Funcs(funcs)

	names := make([]string, 0, len(templates))
	for n := range templates {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, err := root.New(n).Parse(templates[n]); err != nil {
			return nil, fmt.Errorf("parse error in %s: %v", n, err)
		}
	}
	out := map[string]string{}
	for _, n := range names {
		if isPartial(n) {
			continue
		}
		data := map[string]interface{}{}
		for k, v := range top {
			data[k] = v
		}
		data["Template"] = map[string]interface{}{"Name": n, "BasePath": path.Dir(n)}
		var buf strings.Builder
		if err := root.ExecuteTemplate(&buf, n, data); err != nil {
			return nil, fmt.Errorf("render error in %s: %v", n, err)
		}
		out[n] = strings.ReplaceAll(buf.String(), "<no value>", "")
	}
	return out, nil
}

// mergeMaps deep-merges b over a (Helm's handling of several -f files).
func mergeMaps(a, b map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if vm, ok := v.(map[string]interface{}); ok {
			if bv, ok := out[k]; ok {
				if bvm, ok := bv.(map[string]interface{}); ok {
					out[k] = mergeMaps(bvm, vm)
					continue
				}
			}
		}
		out[k] = v
	}
	return out
}

// coalesce merges user values over the chart's defaults: maps merge recursively, anything else
// replaces the default, and a user null deletes the key (Helm's chartutil.CoalesceValues).
func coalesce(user, defaults map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(defaults))
	for k, v := range defaults {
		out[k] = v
	}
	for k, v := range user {
		if v == nil {
			delete(out, k)
			continue
		}
		um, userIsMap := v.(map[string]interface{})
		dm, defaultIsMap := out[k].(map[string]interface{})
		if userIsMap && defaultIsMap {
			out[k] = coalesce(um, dm)
			continue
		}
		out[k] = v
	}
	return out
}

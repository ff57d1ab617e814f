// Command luahealth runs an Argo CD resource health check (a health.lua) against one
// Kubernetes object and prints the table the script returns, as JSON on one line.
//
//	luahealth [-open-libs] health.lua object.yaml
//
// The Lua state is prepared the way Argo CD's application controller prepares it for a
// check configured in argocd-cm, so that a script that passes here also runs there:
//   - gopher-lua, the interpreter Argo CD embeds;
//   - Lua's standard libraries are not opened: only package, base, table and an os table
//     with time and date. (-open-libs opens them all, as Argo CD does for its built-in
//     checks and for resource.customizations.useOpenLibs.<group>_<Kind>: "true".)
//   - the object is the global `obj`, converted from its JSON form the way unstructured
//     objects hold it: integers as int64, other numbers as float64;
//   - the script has one second.
//
// Exit status: 0 with the JSON on stdout; 1 when the script fails or returns no table
// (Argo CD then shows the resource's health as Unknown with the error); 2 for bad usage.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

// Argo CD gives a health script this long before it cancels it.
const scriptTimeout = time.Second

func main() {
	openLibs := flag.Bool("open-libs", false,
		"open all of Lua's standard libraries (Argo CD: resource.customizations.useOpenLibs)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: luahealth [-open-libs] health.lua object.(yaml|json)")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	out, err := run(flag.Arg(0), flag.Arg(1), *openLibs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "luahealth:", err)
		os.Exit(1)
	}
	os.Stdout.Write(append(out, '\n'))
}

func run(scriptPath, objectPath string, openLibs bool) ([]byte, error) {
	script, err := os.ReadFile(scriptPath)
	if err != nil {
		return nil, err
	}
	object, err := readObject(objectPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", objectPath, err)
	}

	L := newState(openLibs)
	defer L.Close()
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	L.SetContext(ctx)
	L.SetGlobal("obj", toLua(L, object))
	if err := L.DoString(string(script)); err != nil {
		return nil, fmt.Errorf("%s: %w", scriptPath, err)
	}
	returned := L.Get(-1)
	table, ok := returned.(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("%s returned %s; a health check must return a table", scriptPath, returned.Type())
	}
	value, err := fromLua(table, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: the returned table: %w", scriptPath, err)
	}
	return json.Marshal(value)
}

// newState opens what Argo CD opens for a health check from argocd-cm.
func newState(openLibs bool) *lua.LState {
	L := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	if !openLibs {
		for _, lib := range []struct {
			name string
			open lua.LGFunction
		}{
			{lua.LoadLibName, lua.OpenPackage},
			{lua.BaseLibName, lua.OpenBase},
			{lua.TabLibName, lua.OpenTable},
			{lua.OsLibName, lua.OpenOs}, // narrowed below
		} {
			L.Push(L.NewFunction(lib.open))
			L.Push(lua.LString(lib.name))
			L.Call(1, 0)
		}
	}
	// Argo CD's os offers only time and date: a check cannot exit, run or read anything.
	full := L.GetGlobal(lua.OsLibName).(*lua.LTable)
	safe := L.NewTable()
	for _, name := range []string{"time", "date"} {
		safe.RawSetString(name, full.RawGetString(name))
	}
	L.SetGlobal(lua.OsLibName, safe)
	if loaded, ok := L.GetField(L.GetGlobal("package"), "loaded").(*lua.LTable); ok {
		loaded.RawSetString(lua.OsLibName, safe)
	}
	return L
}

// readObject reads one YAML or JSON document into the form an unstructured object has.
func readObject(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	asJSON, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, err
	}
	decoder := json.NewDecoder(bytes.NewReader(asJSON))
	decoder.UseNumber()
	var raw any
	if err := decoder.Decode(&raw); err != nil {
		return nil, err
	}
	object, ok := normalize(raw).(map[string]any)
	if !ok {
		return nil, errors.New("not a Kubernetes object (a mapping)")
	}
	return object, nil
}

// normalize turns json.Number into int64 when it is a whole number, else float64,
// as Kubernetes' JSON decoding for unstructured objects does.
func normalize(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case []any:
		for i := range v {
			v[i] = normalize(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = normalize(v[k])
		}
	}
	return v
}

func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case []any:
		table := L.CreateTable(len(v), 0)
		for _, item := range v {
			table.Append(toLua(L, item))
		}
		return table
	case map[string]any:
		table := L.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetString(key, toLua(L, item))
		}
		return table
	}
	return lua.LNil
}

// fromLua turns what the script returned into values encoding/json can write: a table
// with keys 1..n is a list, any other table an object.
func fromLua(v lua.LValue, depth int) (any, error) {
	if depth > 64 {
		return nil, errors.New("nested too deeply (a cycle?)")
	}
	switch v := v.(type) {
	case *lua.LNilType:
		return nil, nil
	case lua.LBool:
		return bool(v), nil
	case lua.LString:
		return string(v), nil
	case lua.LNumber:
		f := float64(v)
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), nil
		}
		return f, nil
	case *lua.LTable:
		return tableFromLua(v, depth)
	}
	return nil, fmt.Errorf("a %s cannot be written as JSON", v.Type())
}

func tableFromLua(table *lua.LTable, depth int) (any, error) {
	keys := 0
	table.ForEach(func(lua.LValue, lua.LValue) { keys++ })
	if n := table.MaxN(); n > 0 && n == keys {
		list := make([]any, 0, n)
		for i := 1; i <= n; i++ {
			item, err := fromLua(table.RawGetInt(i), depth+1)
			if err != nil {
				return nil, err
			}
			list = append(list, item)
		}
		return list, nil
	}
	object := make(map[string]any, keys)
	var err error
	table.ForEach(func(key, value lua.LValue) {
		if err != nil {
			return
		}
		var item any
		if item, err = fromLua(value, depth+1); err == nil {
			object[key.String()] = item
		}
	})
	return object, err
}

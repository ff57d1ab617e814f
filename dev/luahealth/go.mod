// luahealth runs an Argo CD health.lua against a Kubernetes object with gopher-lua,
// the Lua interpreter Argo CD embeds; tests/e2e/test_argocd_health.py uses it.
module edgeline.local/luahealth

go 1.22

require (
	github.com/yuin/gopher-lua v1.1.1
	sigs.k8s.io/yaml v1.6.0
)

require go.yaml.in/yaml/v2 v2.4.2 // indirect

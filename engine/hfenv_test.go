package engine

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// hfVars are every variable the hub-cache cases set or clear.
var hfVars = []string{"HOME", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME", "HF_HUB_OFFLINE",
	"TRANSFORMERS_OFFLINE", "DATA", "MYROOT", "UNSET_VAR", "A", "B", "WHO"}

// TestHubCacheMatchesHuggingFaceHub: under 49 environments, HF_HOME, the hub
// cache and the offline switch equal what huggingface_hub's constants
// module computes (engine/testdata/hfenv.json, made by
// scripts/reference/make_hfenv_refs.py). The cases differ from each other,
// so a rule that ignores a variable fails some of them.
func TestHubCacheMatchesHuggingFaceHub(t *testing.T) {
	var ref struct {
		Cases []struct {
			Env      map[string]string `json:"env"`
			HFHome   string            `json:"hf_home"`
			HubCache string            `json:"hub_cache"`
			Offline  bool              `json:"offline"`
		} `json:"cases"`
	}
	data, err := os.ReadFile(filepath.Join("testdata", "hfenv.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Cases) < 40 {
		t.Fatalf("only %d cases", len(ref.Cases))
	}
	for _, v := range hfVars {
		t.Setenv(v, "") // restored after the test
	}
	caches := map[string]bool{}
	for i, c := range ref.Cases {
		for _, v := range hfVars {
			os.Unsetenv(v)
		}
		for k, v := range c.Env {
			os.Setenv(k, v)
		}
		cache, err := HubCacheDir()
		if err != nil {
			t.Fatal(err)
		}
		if home := hfHome(); home != c.HFHome {
			t.Errorf("case %d %v: HF_HOME %q, huggingface_hub %q", i, c.Env, home, c.HFHome)
		}
		if cache != c.HubCache {
			t.Errorf("case %d %v: hub cache %q, huggingface_hub %q", i, c.Env, cache, c.HubCache)
		}
		if off := HubOffline(); off != c.Offline {
			t.Errorf("case %d %v: offline %v, huggingface_hub %v", i, c.Env, off, c.Offline)
		}
		caches[c.HubCache] = true
	}
	if len(caches) < 20 {
		t.Fatalf("the cases give only %d distinct caches: they cannot tell rules apart", len(caches))
	}
}

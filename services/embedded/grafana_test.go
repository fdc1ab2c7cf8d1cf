package embedded

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestGrafanaDashboard: every metric the Grafana dashboard
// (infra/grafana/elastiq.json) queries is one the programs expose: the
// embedded program's registry holds the web tier's, the scaler's and the
// workers' metrics, as the distributed programs serve them.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "infra", "grafana", "elastiq.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	imgs := loadWorkload(t)
	h := start(t, testConfig(t), newContentClassifier(imgs), nil)
	fams, err := h.s.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exposed := map[string]bool{}
	for _, f := range fams {
		exposed[f.GetName()] = true
	}
	name := regexp.MustCompile(`\belastiq_[a-z_]+`)
	n := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				n++
				base := m
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if b, ok := strings.CutSuffix(m, suffix); ok && exposed[b] {
						base = b
					}
				}
				if !exposed[base] {
					t.Errorf("panel %q queries %s, which no program exposes", p.Title, m)
				}
			}
		}
	}
	if n == 0 {
		t.Error("the dashboard queries no elastiq metric")
	}
}

package embedded

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

// chart reads, in the page, the figures its script drew into one chart: for
// each series the largest and the latest value in the shown range (the
// polylines' data-max and data-last), and the scaling decisions marked on it.
type chart struct {
	Max    map[string]float64 `json:"max"`
	Last   map[string]float64 `json:"last"`
	Events int                `json:"events"`
}

// chartWait bounds each wait for the charts to show something: the fleet's
// warm-up and idle stop take seconds, more on a machine that is also
// running other tests.
const chartWait = 2 * time.Minute

const readCharts = `(() => {
	const out = {};
	for (const svg of document.querySelectorAll("svg[id^=chart-]")) {
		const c = { max: {}, last: {}, events: svg.querySelectorAll(".event-mark").length };
		for (const p of svg.querySelectorAll("polyline[data-series]")) {
			if (p.dataset.max === "") continue;
			const k = p.dataset.series;
			c.max[k] = Math.max(c.max[k] ?? -Infinity, Number(p.dataset.max));
			c.last[k] = Number(p.dataset.last);
		}
		out[svg.id] = c;
	}
	return out;
})()`

// TestDashboardInBrowser opens GET /dashboard in headless Chromium on the
// embedded stack (its local fleet, queue and store; the classifier is the
// test double that answers by content), sends the CSE546 burst, and reads
// the charts the page drew: the burst in the request, latency and queue
// charts, the fleet growing and then stopping on the instance chart with the
// scaler's decisions marked, and the cost. It saves a screenshot
// (ELASTIQ_DASHBOARD_SCREENSHOT names the file; `make screenshot` writes the
// README's), and checks that the page fits a phone's width.
func TestDashboardInBrowser(t *testing.T) {
	chromium := elastiqtest.Chromium(t)
	imgs := loadWorkload(t)
	cfg := testConfig(t)
	cfg.BootDelay = time.Second
	cfg.Worker.IdleTimeout = 3 * time.Second
	cfg.Web.DashboardInterval = 250 * time.Millisecond
	h := start(t, cfg, newContentClassifier(imgs), nil)

	ctx, cancel := context.WithTimeout(t.Context(), 3*chartWait)
	defer cancel()
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // CI runs as root
		chromedp.WindowSize(1280, 1000),
		chromedp.UserDataDir(t.TempDir()),
	)...)
	defer cancelAlloc()
	var browserLog bytes.Buffer
	var logMu sync.Mutex
	bctx, cancelBrowser := chromedp.NewContext(alloc, chromedp.WithErrorf(func(f string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(&browserLog, f+"\n", args...)
	}))
	defer cancelBrowser()
	if err := chromedp.Do(bctx,
		chromedp.Navigate(h.url+"/dashboard"),
		chromedp.WaitVisible(chromedp.CSS(`#status.ok`)),
	); err != nil {
		t.Fatalf("open the dashboard in %s: %v", chromium, err)
	}
	charts := func() map[string]chart {
		t.Helper()
		c, err := chromedp.Run(bctx, chromedp.Evaluate[map[string]chart](readCharts))
		if err != nil {
			t.Fatalf("read the charts: %v", err)
		}
		return c
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}
	// The backlog policy's warm pool: launched at start, stopped when
	// initialised. The burst then starts it.
	for deadline := time.Now().Add(chartWait); ; time.Sleep(100 * time.Millisecond) {
		inst := charts()["chart-instances"]
		if inst.Last["stopped"] == float64(cfg.Policy.Backlog.WarmPool) && inst.Last["running"] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the warm pool of %d stopped on the chart; it shows %+v", cfg.Policy.Backlog.WarmPool, inst)
		}
	}
	if got := charts()["chart-requests"].Max["accepted"]; got != 0 {
		t.Fatalf("before the burst, accepted/s peaks at %v, want 0", got)
	}

	// The burst: every answer right.
	var wg sync.WaitGroup
	errs := make(chan error, len(imgs))
	for _, img := range imgs {
		wg.Go(func() {
			code, body, err := h.post("/", "myfile", img.name, img.data)
			if err == nil && (code != http.StatusOK || body != img.label) {
				err = fmt.Errorf("POST / %s = %d %q, want 200 %q", img.name, code, body, img.label)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// The charts show the burst, then the fleet stopping when idle.
	var c map[string]chart
	for deadline := time.Now().Add(chartWait); ; time.Sleep(100 * time.Millisecond) {
		c = charts()
		req, inst := c["chart-requests"], c["chart-instances"]
		if req.Max["accepted"] > 0 && req.Max["done"] > 0 && inst.Max["running"] >= 1 &&
			inst.Last["running"] == 0 && strings.Contains(text(`#events`), "start") && inst.Events > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the burst and the fleet's rise and fall on the charts; they show %+v; decisions %q", c, text(`#events`))
		}
	}
	perSecond := 1 / cfg.Web.DashboardInterval.Seconds()
	for _, tt := range []struct {
		name string
		got  float64
		ok   bool
		want string
	}{
		{"requests: accepted/s peak", c["chart-requests"].Max["accepted"], c["chart-requests"].Max["accepted"] >= perSecond, ">= one per interval"},
		{"requests: failed/s peak", c["chart-requests"].Max["failed"], c["chart-requests"].Max["failed"] == 0, "0"},
		{"latency: p99 peak", c["chart-latency"].Max["p99"], c["chart-latency"].Max["p99"] > 0, "> 0"},
		{"queue: visible peak", c["chart-queue"].Max["visible"], c["chart-queue"].Max["visible"] >= 1, ">= 1"},
		{"instances: running peak", c["chart-instances"].Max["running"], c["chart-instances"].Max["running"] >= 1, ">= 1"},
		{"instances: stopped at the end", c["chart-instances"].Last["stopped"], c["chart-instances"].Last["stopped"] >= 1, ">= 1"},
		{"cost: dollars at the end", c["chart-cost"].Last["cost_dollars"], c["chart-cost"].Last["cost_dollars"] > 0, "> 0"},
	} {
		if !tt.ok {
			t.Errorf("%s = %v, want %s", tt.name, tt.got, tt.want)
		}
	}
	answered, decisions, sources := text(`#tile-answered`), text(`#events`), text(`#sources`)
	if want := fmt.Sprintf("%d / 0", len(imgs)); answered != want {
		t.Errorf("answered tile = %q, want %q", answered, want)
	}
	if !strings.Contains(decisions, "start") && !strings.Contains(decisions, "launch") {
		t.Errorf("decision list = %q, want a start or launch with its reason", decisions)
	}
	if sources != "" {
		t.Errorf("sources line = %q, want empty (every source read)", sources)
	}

	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if img, err := png.Decode(bytes.NewReader(shot)); err != nil || img.Bounds().Dx() < 1000 {
		t.Errorf("screenshot: %v, %v; want a PNG at least 1000 pixels wide", err, img)
	}
	path := os.Getenv("ELASTIQ_DASHBOARD_SCREENSHOT")
	if path == "" {
		path = filepath.Join(t.TempDir(), "dashboard.png")
	}
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)

	// On a phone's screen the page fits its width: nothing to scroll
	// sideways.
	if err := chromedp.Do(bctx,
		chromedp.EmulateViewport(390, 844),
		chromedp.Sleep(300*time.Millisecond), // a redraw at the new width
	); err != nil {
		t.Fatal(err)
	}
	overflow, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if overflow {
		t.Error("at 390 pixels wide the page scrolls sideways, want it to fit")
	}
	logMu.Lock()
	defer logMu.Unlock()
	if browserLog.Len() > 0 {
		t.Errorf("the browser reported errors:\n%s", browserLog.String())
	}
}

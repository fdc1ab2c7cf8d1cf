package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestPackerTemplate: ami/worker.pkr.hcl starts from the image the stack
// uses for the web instance and plain workers, uploads what provision.sh
// installs to where it looks, and runs it. (scripts/check-ami.sh has packer
// validate it.)
func TestPackerTemplate(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "ami", "worker.pkr.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	hcl := string(data)
	for _, want := range []string{
		`name                = "` + AL2023NameFilter + `"`,
		`owners      = ["` + AmazonLinuxOwner + `"]`,
		`most_recent = true`,
		`architecture        = "x86_64"`,
		`script          = "${path.root}/provision.sh"`,
		`sudo {{ .Path }} ` + amiUploadDir,
		`"elastiq:role"`,
	} {
		if !strings.Contains(hcl, want) {
			t.Errorf("worker.pkr.hcl has no %s", want)
		}
	}
	var uploaded []string
	for _, m := range regexp.MustCompile(`destination = "`+regexp.QuoteMeta(amiUploadDir)+`/([^"]+)"`).FindAllStringSubmatch(hcl, -1) {
		uploaded = append(uploaded, m[1])
	}
	slices.Sort(uploaded)
	want := []string{SumsName, WorkerService, WorkerName, ModelsName}
	slices.Sort(want)
	if !slices.Equal(uploaded, want) {
		t.Errorf("worker.pkr.hcl uploads %v to %s, want %v (what provision.sh reads)", uploaded, amiUploadDir, want)
	}
}

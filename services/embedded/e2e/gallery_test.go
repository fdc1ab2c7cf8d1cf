package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/elastiq/elastiq/services/elastiq/elastiqtest/awsstack"
)

// galleryToken is the web program's admin token in these tests.
const galleryToken = "e2e-admin-token"

// galleryTokenParameter is the SSM parameter holding it in the
// distributed test, as the Pulumi program names it.
const galleryTokenParameter = "/elastiq/e2e/admin-token"

// adminTokenParameter stores the admin token in st's SSM, as the Pulumi
// program does (a SecureString), and returns the parameter's ARN.
func adminTokenParameter(tb testing.TB, st *awsstack.Enforcing) string {
	tb.Helper()
	if _, err := ssm.NewFromConfig(st.Config).PutParameter(context.Background(), &ssm.PutParameterInput{
		Name: aws.String(galleryTokenParameter), Value: aws.String(galleryToken), Type: ssmtypes.ParameterTypeSecureString,
	}); err != nil {
		tb.Fatal(err)
	}
	return "arn:aws:ssm:" + st.Region + ":" + st.Account + ":parameter" + galleryTokenParameter
}

// galleryRequests is how many requests checkGallery sends through the
// queue: an enrolment and three recognitions.
const galleryRequests = 4

// checkGallery manages the gallery through the API of the web program at
// url, under IAM, and recognises through the one at queryURL (the same, or
// another beside it): a person the gallery does not hold is enrolled with
// one photo (a worker embeds and stores it), another photo of them sent
// after the 201 is named (every worker reads the stored gallery again for
// it), the subjects list shows them, and after DELETE (the web tier deletes
// the face) the photo is no longer named.
func checkGallery(ctx context.Context, t *testing.T, url, queryURL string) {
	t.Helper()
	lfw := filepath.Join(repoRoot, "datasets", "lfw-sample")
	read := func(path string) image {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return image{name: filepath.Base(path), data: b}
	}
	enrolPhoto := read(filepath.Join(lfw, "gallery", "Colin_Powell", "Colin_Powell_0001.jpg"))
	query := read(filepath.Join(lfw, "queries", "Colin_Powell_0002.jpg"))
	admin := func(method, path string, files ...formFile) (int, string) {
		t.Helper()
		var resp *http.Response
		var err error
		if len(files) > 0 {
			resp, err = postFilesAuth(ctx, url+path, "Bearer "+galleryToken, files...)
		} else {
			req, rerr := http.NewRequestWithContext(ctx, method, url+path, nil)
			if rerr != nil {
				t.Fatal(rerr)
			}
			req.Header.Set("Authorization", "Bearer "+galleryToken)
			resp, err = client.Do(req)
		}
		if err != nil {
			failIfDone(ctx, t)
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	name := func() string {
		t.Helper()
		code, body, err := post(ctx, queryURL, query)
		if err != nil || code != http.StatusOK {
			t.Fatalf("POST / %s = %d %q, %v", query.name, code, body, err)
		}
		return body
	}
	if got := name(); got == "Colin_Powell" {
		t.Fatalf("before the enrolment, %s = %q", query.name, got)
	}
	if code, body := admin(http.MethodPost, "/v1/subjects/Colin_Powell/faces", formFile{"file", enrolPhoto}); code != http.StatusCreated {
		t.Fatalf("enrol Colin_Powell = %d %q, want 201", code, body)
	}
	if got := name(); got != "Colin_Powell" {
		t.Errorf("after the enrolment's 201, %s = %q, want Colin_Powell", query.name, got)
	}
	if code, body := admin(http.MethodGet, "/v1/subjects"); code != http.StatusOK || !strings.Contains(body, `{"name":"Colin_Powell","faces":1}`) {
		t.Errorf("GET /v1/subjects = %d %q, want Colin_Powell with one face", code, body)
	}
	if code, body := admin(http.MethodDelete, "/v1/subjects/Colin_Powell"); code != http.StatusNoContent {
		t.Fatalf("DELETE /v1/subjects/Colin_Powell = %d %q, want 204", code, body)
	}
	if got := name(); got == "Colin_Powell" {
		t.Errorf("after DELETE, %s = %q", query.name, got)
	}
}

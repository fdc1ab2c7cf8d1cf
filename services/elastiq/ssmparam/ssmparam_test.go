package ssmparam_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/elastiq/ssmparam"
)

// TestRead reads a SecureString parameter from moto, and fails on a
// missing one.
func TestRead(t *testing.T) {
	cfg := elastiqtest.AWSConfig(t)
	name := "/" + elastiqtest.UniqueName(t) + "/admin-token"
	if _, err := ssm.NewFromConfig(cfg).PutParameter(t.Context(), &ssm.PutParameterInput{
		Name: aws.String(name), Value: aws.String("s3cret\n"), Type: types.ParameterTypeSecureString,
	}); err != nil {
		t.Fatal(err)
	}
	got, err := ssmparam.Read(t.Context(), cfg, name)
	if err != nil || got != "s3cret" {
		t.Errorf("Read(%s) = %q, %v; want s3cret", name, got, err)
	}
	if _, err := ssmparam.Read(t.Context(), cfg, name+"-missing"); err == nil || !strings.Contains(err.Error(), "-missing") {
		t.Errorf("Read(a missing parameter) = %v, want an error naming it", err)
	}
}

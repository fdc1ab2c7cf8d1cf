package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

const typeParameter = "aws:ssm/parameter:Parameter"

// TestAdminToken: with elastiq:adminToken set, the token goes to an SSM
// SecureString parameter, the web instance's user data names the parameter
// and never holds the token, and the web role may read that one parameter;
// without it, none of that.
func TestAdminToken(t *testing.T) {
	const token = "s3cret-token-value"
	d := deployStack(t, testConfig(t, map[string]string{"adminToken": token}))
	p := d.one(t, typeParameter, testStack+"-admin-token")
	name := "/elastiq/" + testStack + "/admin-token"
	if p.Inputs["name"] != name || p.Inputs["type"] != "SecureString" {
		t.Errorf("parameter = name %v, type %v; want %s, SecureString", p.Inputs["name"], p.Inputs["type"], name)
	}
	if v, ok := p.Inputs["value"].(*resource.Secret); !ok || v.Element.V != token {
		t.Errorf("parameter value = %#v, want the token as a secret (encrypted in the state)", p.Inputs["value"])
	}
	web, worker := userData(t, d)
	if !strings.Contains(web, "ELASTIQ_ADMIN_TOKEN_SSM_PARAMETER="+name) {
		t.Errorf("web user data does not name the parameter:\n%s", web)
	}
	if strings.Contains(web, token) || strings.Contains(worker, token) {
		t.Error("the token itself is in the user data")
	}
	arn := fmt.Sprint(p.Outputs["arn"])
	readers := map[string]bool{}
	for _, role := range []string{"web", "worker"} {
		for _, st := range parsePolicy(t, fmt.Sprint(d.one(t, typeRolePolicy, testStack+"-"+role).Inputs["policy"])) {
			if slices.Contains(st.Action, "ssm:GetParameter") {
				readers[role] = slices.Equal(st.Resource, []string{arn})
			}
		}
	}
	if !readers["web"] || len(readers) != 1 {
		t.Errorf("ssm:GetParameter granted as %v, want to the web role on %s only", readers, arn)
	}

	d = deployStack(t, testConfig(t, nil))
	web, _ = userData(t, d)
	if len(d.ofType(typeParameter)) != 0 || strings.Contains(web, "ADMIN_TOKEN") ||
		strings.Contains(fmt.Sprint(d.one(t, typeRolePolicy, testStack+"-web").Inputs["policy"]), "ssm:") {
		t.Error("without elastiq:adminToken: want no parameter, no user data line, no ssm grant")
	}
}

// Package ssmparam reads a secret from AWS Systems Manager Parameter Store:
// how a deployed program gets a secret (the gallery's admin token) without
// it appearing in its user data, its environment file or its logs. Only the
// parameter's name travels; the program reads the value at start, with its
// instance role's ssm:GetParameter on that one parameter.
package ssmparam

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// Read returns the decrypted value of the parameter name (a SecureString,
// or a plain String), trimmed of surrounding space.
func Read(ctx context.Context, cfg aws.Config, name string) (string, error) {
	out, err := ssm.NewFromConfig(cfg).GetParameter(ctx, &ssm.GetParameterInput{
		Name:           aws.String(name),
		WithDecryption: aws.Bool(true),
	})
	if err != nil {
		return "", fmt.Errorf("read parameter %s: %w", name, err)
	}
	if out.Parameter == nil {
		return "", fmt.Errorf("read parameter %s: no parameter in the answer", name)
	}
	v := strings.TrimSpace(aws.ToString(out.Parameter.Value))
	if v == "" {
		return "", errors.New("read parameter " + name + ": empty")
	}
	return v, nil
}

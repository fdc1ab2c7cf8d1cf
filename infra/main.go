// Command infra is the Pulumi program that stands up elastiq on AWS: the
// bucket, the queues, the roles, the security groups, the web instance
// (memcached, web tier, scaler) and the workers' launch template, with the
// services built from this repository and uploaded as the deployment bundle.
//
// Run it with the Pulumi CLI from the repository root (Pulumi.yaml names
// infra/ as the program): `pulumi up`. The settings are the elastiq:* keys
// of Pulumi.<stack>.yaml (see Config and parseConfig).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/elastiq/elastiq/infra/deploy"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
)

func main() {
	pulumi.Run(func(ctx *pulumi.Context) error { return run(ctx, bundleBuilder) })
}

// run is the program: read the settings once, make the stack with the bundle
// builder for the repository and export the stack's outputs.
func run(ctx *pulumi.Context, builder func(root string) buildFunc) error {
	cfg, err := parseConfig(config.New(ctx, configNamespace).Get)
	if err != nil {
		return err
	}
	wd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("infra: %w", err)
	}
	root, err := deploy.FindRoot(wd)
	if err != nil {
		return fmt.Errorf("infra: %w", err)
	}
	cfg.Build = builder(root)
	st, err := newStack(ctx, cfg)
	if err != nil {
		return err
	}
	for name, value := range st.outputs() {
		ctx.Export(name, value)
	}
	return nil
}

// bundleBuilder builds the bundle of the repository at root with
// deploy.Build into infra/.bundle (ignored by git), logging its progress.
func bundleBuilder(root string) buildFunc {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "deploy")
	return func(ctx context.Context) (deploy.Bundle, error) {
		return deploy.Build(ctx, deploy.BuildOptions{
			Root:   root,
			Out:    filepath.Join(root, "infra", ".bundle"),
			Logger: log,
		})
	}
}

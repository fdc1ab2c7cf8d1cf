package scaler

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/elastiq/elastiq/services/elastiq"
)

// Host is the machine the scaler runs on, as far as TerminateWithHost needs
// it: its instance ID and state.
type Host interface {
	State(ctx context.Context) (id string, state elastiq.InstanceState, err error)
}

// FleetTerminator lists and terminates the workers.
type FleetTerminator interface {
	List(ctx context.Context) ([]elastiq.Instance, error)
	Terminate(ctx context.Context, ids []string) error
}

// TerminateWithHost terminates the fleet's workers when the scaler's own
// host is being terminated (shutting-down or terminated). The workers are
// launched by the scaler, not by the deployment tool, so nothing else would
// remove them: `pulumi destroy` would leave them running and could not
// delete their security group. When the host is only stopped or rebooted the
// workers are left alone. It returns the IDs it terminated.
func TerminateWithHost(ctx context.Context, host Host, fleet FleetTerminator, log *slog.Logger) ([]string, error) {
	id, state, err := host.State(ctx)
	if err != nil {
		return nil, fmt.Errorf("terminate workers with host: %w", err)
	}
	if state != elastiq.InstanceShuttingDown && state != elastiq.InstanceTerminated {
		log.Info("host not terminating; workers left alone", "host", id, "state", state)
		return nil, nil
	}
	workers, err := fleet.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("terminate workers with host: %w", err)
	}
	ids := make([]string, 0, len(workers))
	for _, w := range workers {
		if w.State != elastiq.InstanceShuttingDown && w.State != elastiq.InstanceTerminated {
			ids = append(ids, w.ID)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	if err := fleet.Terminate(ctx, ids); err != nil {
		return nil, fmt.Errorf("terminate workers with host: %w", err)
	}
	log.Info("host terminating: terminated the stack's workers", "host", id, "workers", ids)
	return ids, nil
}

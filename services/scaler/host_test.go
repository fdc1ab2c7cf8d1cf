package scaler

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/elastiq/elastiq/services/elastiq"
)

// hostState is a test double of the scaler's host.
type hostState elastiq.InstanceState

func (h hostState) State(context.Context) (string, elastiq.InstanceState, error) {
	return "i-host", elastiq.InstanceState(h), nil
}

func TestTerminateWithHost(t *testing.T) {
	for _, tt := range []struct {
		name string
		host elastiq.InstanceState
		want []string
	}{
		{name: "host running", host: elastiq.InstanceRunning, want: nil},
		{name: "host stopping", host: elastiq.InstanceStopping, want: nil},
		{name: "host shutting down", host: elastiq.InstanceShuttingDown, want: []string{"i-1", "i-2"}},
		{name: "host terminated", host: elastiq.InstanceTerminated, want: []string{"i-1", "i-2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fleet := newFakeFleet(
				elastiq.Instance{ID: "i-1", State: elastiq.InstanceRunning},
				elastiq.Instance{ID: "i-2", State: elastiq.InstanceStopped},
				elastiq.Instance{ID: "i-3", State: elastiq.InstanceTerminated},
			)
			got, err := TerminateWithHost(t.Context(), hostState(tt.host), fleet, slog.New(slog.DiscardHandler))
			slices.Sort(got) // in the order the fleet lists them
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("TerminateWithHost() = %v, %v; want %v", got, err, tt.want)
			}
			if n := fleet.count(elastiq.InstanceTerminated) + fleet.count(elastiq.InstanceShuttingDown); n != 1+len(tt.want) {
				t.Errorf("instances terminated or shutting down after = %d, want %d", n, 1+len(tt.want))
			}
		})
	}
}

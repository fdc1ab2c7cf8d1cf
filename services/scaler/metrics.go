package scaler

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/scaler/policy"
)

// Actions, for the action label of the scaler's metrics.
const (
	ActionStart     = "start"
	ActionLaunch    = "launch"
	ActionStop      = "stop"
	ActionTerminate = "terminate"
)

var actions = []string{ActionStart, ActionLaunch, ActionStop, ActionTerminate}

// Metrics are a scaler's Prometheus metrics: what it observed and decided at
// its latest evaluation, what it did, and the policy's inputs. A Scaler
// whose Deps.Metrics is nil records none.
type Metrics struct {
	evaluations prometheus.Counter
	decisions   *prometheus.CounterVec // action: decisions that asked for it
	instances   *prometheus.CounterVec // action: instances it was done to
	errors      *prometheus.CounterVec // action: calls that failed
	arrivals    prometheus.Counter
	messages    *prometheus.GaugeVec // state
	fleet       *prometheus.GaugeVec // state
	rate        prometheus.Gauge
	service     prometheus.Gauge

	instanceSeconds *prometheus.CounterVec // state
	billedSeconds   prometheus.Counter
	costDollars     prometheus.Counter
	usage           elastiq.FleetUsage // as last recorded, to add the differences
}

// NewMetrics makes a scaler's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		evaluations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "elastiq_scaler_evaluations_total", Help: "Times the scaler observed the queue and the fleet and decided."}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elastiq_scaler_decisions_total", Help: "Decisions that asked for an action, by action."}, []string{"action"}),
		instances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elastiq_scaler_instances_total", Help: "Instances started, launched, stopped or terminated, by action."},
			[]string{"action"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elastiq_scaler_action_errors_total", Help: "Fleet calls that failed, by action."}, []string{"action"}),
		arrivals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "elastiq_scaler_nudged_requests_total", Help: "Accepted requests reported to the scaler (nudges)."}),
		messages: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "elastiq_scaler_observed_messages", Help: "Request-queue messages at the latest evaluation, by state."},
			[]string{"state"}),
		fleet: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "elastiq_scaler_observed_instances", Help: "Worker instances at the latest evaluation, by state."},
			[]string{"state"}),
		rate: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "elastiq_scaler_arrival_rate_per_second", Help: "Measured arrival rate the policy used (requests per second; 0: not measured)."}),
		service: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "elastiq_scaler_service_time_seconds", Help: "Measured time per message the policy used (0: not measured)."}),
		instanceSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elastiq_fleet_instance_seconds_total", Help: "Time worker instances spent in each state, summed over instances."},
			[]string{"state"}),
		billedSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "elastiq_fleet_billed_instance_seconds_total",
			Help: "Instance time billed: pending and running, at least 60 s per start, as EC2 bills."}),
		costDollars: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "elastiq_fleet_cost_dollars_total",
			Help: "Estimated cost of the worker fleet at the configured prices (-price-per-hour, -stopped-price-per-hour)."}),
	}
	for _, st := range []elastiq.InstanceState{elastiq.InstancePending, elastiq.InstanceRunning, elastiq.InstanceStopping, elastiq.InstanceStopped} {
		m.instanceSeconds.WithLabelValues(string(st))
	}
	for _, a := range actions {
		m.decisions.WithLabelValues(a)
		m.instances.WithLabelValues(a)
		m.errors.WithLabelValues(a)
	}
	reg.MustRegister(m.evaluations, m.decisions, m.instances, m.errors, m.arrivals, m.messages, m.fleet, m.rate, m.service,
		m.instanceSeconds, m.billedSeconds, m.costDollars)
	return m
}

// observed records an evaluation's observation and decision, and the
// fleet's usage up to it.
func (m *Metrics) observed(o policy.Observation, d policy.Decision, u elastiq.FleetUsage) {
	if m == nil {
		return
	}
	m.evaluations.Inc()
	m.messages.WithLabelValues("visible").Set(float64(o.Visible))
	m.messages.WithLabelValues("in_flight").Set(float64(o.InFlight))
	for state, in := range map[elastiq.InstanceState][]elastiq.Instance{
		elastiq.InstanceRunning: o.Running, elastiq.InstancePending: o.Pending,
		elastiq.InstanceStopping: o.Stopping, elastiq.InstanceStopped: o.Stopped,
	} {
		m.fleet.WithLabelValues(string(state)).Set(float64(len(in)))
	}
	m.rate.Set(o.ArrivalRate)
	m.service.Set(o.ServiceTime.Seconds())
	for st, sec := range u.InstanceSeconds {
		if d := sec - m.usage.InstanceSeconds[st]; d > 0 {
			m.instanceSeconds.WithLabelValues(string(st)).Add(d)
		}
	}
	if d := u.BilledSeconds - m.usage.BilledSeconds; d > 0 {
		m.billedSeconds.Add(d)
	}
	if d := u.CostDollars - m.usage.CostDollars; d > 0 {
		m.costDollars.Add(d)
	}
	m.usage = u
	for a, n := range map[string]int{ActionStart: len(d.Start), ActionLaunch: d.Launch, ActionStop: len(d.Stop), ActionTerminate: len(d.Terminate)} {
		if n > 0 {
			m.decisions.WithLabelValues(a).Inc()
		}
	}
}

// acted records an action's outcome on n instances.
func (m *Metrics) acted(action string, n int, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.errors.WithLabelValues(action).Inc()
		return
	}
	m.instances.WithLabelValues(action).Add(float64(n))
}

func (m *Metrics) nudged(n int) {
	if m != nil && n > 0 {
		m.arrivals.Add(float64(n))
	}
}

// Package worker is the worker tier: it long-polls the request queue, reads
// each request's input, classifies it, writes the result to output/<id>,
// sends it on the response queue and only then deletes the request message.
//
// Delivery is at least once. A message is deleted only after its result is
// stored and sent, so a worker that dies or hits a transient error leaves the
// message to be delivered again when its visibility expires; a duplicate
// delivery finds output/<id> already written and reuses it instead of
// classifying again. While a message is in hand a heartbeat extends its
// visibility, so long work is not redelivered to another worker.
//
// A Worker owns its lifecycle, as an http.Server does: Run processes
// messages until the queue has stayed empty for the idle timeout (it returns
// nil: the worker stopped itself), its context ends (messages in hand are
// released at once), or Shutdown stops it gracefully (it takes no new
// message and finishes those in hand within the caller's grace period).
package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/retry"
)

// Config configures a Worker. Start from DefaultConfig.
type Config struct {
	// Name identifies this worker instance; it is written into every Result.
	Name string
	// VisibilityTimeout is the request queue's visibility timeout. While a
	// message is in hand the worker extends its visibility by this much
	// every VisibilityTimeout/2.
	VisibilityTimeout time.Duration
	// IdleTimeout: Run returns nil once the queue has stayed empty this long
	// with no message in hand. Zero means never stop.
	IdleTimeout time.Duration
	// Concurrency is how many messages are processed at once.
	Concurrency int
	// Hold is how many messages more than Concurrency the worker may have
	// in hand: received ahead of a free slot and held, their visibility
	// extended, until one frees. It lets one Receive take a batch (see
	// BatchSize) instead of one call per message. On Shutdown the held
	// messages not yet started are released at once. Default 0.
	Hold int
	// ReceiveWait is the long-poll wait of one Receive (at most 20s, as in
	// SQS). It is shortened so it never outlasts the remaining idle time.
	ReceiveWait time.Duration
	// BatchSize is the most messages one Receive asks for (1 to 10). The
	// worker never asks for more than Concurrency+Hold minus the messages
	// in hand.
	BatchSize int
	// OpTimeout bounds each store and queue call other than the long poll
	// (which gets ReceiveWait plus OpTimeout).
	OpTimeout time.Duration
	// ErrorBackoff is the pause after a transient error; it doubles with
	// each consecutive error up to MaxErrorBackoff and resets on success.
	ErrorBackoff    time.Duration
	MaxErrorBackoff time.Duration
	// StoreRetry is how long a worker keeps retrying a failed read of an
	// input or write of an output, holding its message (the heartbeat
	// extends it), before it leaves the message for redelivery. A full
	// disk or an S3 outage is not the image's fault: each redelivery would
	// count towards the dead-letter limit and end a good request as
	// failed.
	StoreRetry time.Duration
	// CancelReceiveOnShutdown makes Shutdown cut a long poll in progress
	// short. Set it only for a queue whose cancelled Receive takes no
	// message (the embedded one). On SQS a cancelled ReceiveMessage may
	// still have taken messages, which would then stay invisible for their
	// visibility timeout; so by default the poll runs to its end and the
	// messages it brings are released at once.
	CancelReceiveOnShutdown bool
}

// DefaultConfig returns the defaults for a worker called name.
func DefaultConfig(name string) Config {
	return Config{
		Name:              name,
		VisibilityTimeout: elastiq.DefaultVisibilityTimeout,
		IdleTimeout:       60 * time.Second,
		Concurrency:       1,
		ReceiveWait:       elastiq.MaxReceiveWait,
		BatchSize:         1,
		OpTimeout:         30 * time.Second,
		ErrorBackoff:      250 * time.Millisecond,
		MaxErrorBackoff:   8 * time.Second,
		StoreRetry:        10 * time.Minute,
	}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("worker config: empty Name")
	case c.VisibilityTimeout < 2*time.Millisecond:
		return fmt.Errorf("worker config: VisibilityTimeout %v: want at least 2ms", c.VisibilityTimeout)
	case c.IdleTimeout < 0:
		return fmt.Errorf("worker config: IdleTimeout %v: want >= 0 (0 = never stop)", c.IdleTimeout)
	case c.Concurrency < 1:
		return fmt.Errorf("worker config: Concurrency %d: want >= 1", c.Concurrency)
	case c.Hold < 0:
		return fmt.Errorf("worker config: Hold %d: want >= 0", c.Hold)
	case c.ReceiveWait <= 0 || c.ReceiveWait > elastiq.MaxReceiveWait:
		return fmt.Errorf("worker config: ReceiveWait %v: want in (0, %v]", c.ReceiveWait, elastiq.MaxReceiveWait)
	case c.BatchSize < 1 || c.BatchSize > elastiq.MaxReceiveBatch:
		return fmt.Errorf("worker config: BatchSize %d: want 1 to %d", c.BatchSize, elastiq.MaxReceiveBatch)
	case c.OpTimeout <= 0:
		return fmt.Errorf("worker config: OpTimeout %v: want > 0", c.OpTimeout)
	case c.StoreRetry < 0:
		return fmt.Errorf("worker config: StoreRetry %v: want >= 0", c.StoreRetry)
	case c.ErrorBackoff <= 0 || c.MaxErrorBackoff < c.ErrorBackoff:
		return fmt.Errorf("worker config: ErrorBackoff %v, MaxErrorBackoff %v: want 0 < ErrorBackoff <= MaxErrorBackoff",
			c.ErrorBackoff, c.MaxErrorBackoff)
	}
	return nil
}

// Deps are what a Worker talks to.
type Deps struct {
	// Requests is the request queue; Responses the response queue (nil
	// with ReplyQueues: every request names its own).
	Requests, Responses elastiq.Queue
	// ReplyQueues, if set, opens the queue a request names in ReplyTo
	// (each web instance's own); its result goes there instead of on
	// Responses.
	ReplyQueues elastiq.ReplyQueues
	// Store holds input/<id> (read) and output/<id> (written).
	Store      elastiq.ObjectStore
	Classifier elastiq.Classifier
	// Gallery, if set, keeps the classifier's gallery in step with the
	// stored one (its classifier must be an elastiq.FaceEnroller), and
	// the worker takes enrolments (elastiq.KindEnroll).
	Gallery *Gallery
	// Metrics, if set, records what the worker does (NewMetrics).
	Metrics *Metrics
	// Logger defaults to discarding; Now to time.Now.
	Logger *slog.Logger
	Now    func() time.Time
}

// Stats are a worker's counters since New.
type Stats struct {
	// Received counts deliveries taken off the request queue.
	Received int64
	// Done and Failed count results sent and acknowledged, by status.
	Done, Failed int64
	// Duplicates counts deliveries answered from an existing output/<id>.
	Duplicates int64
	// Undecodable counts messages dropped because they were not a Request.
	Undecodable int64
	// Errors counts transient errors (the message was left for redelivery).
	Errors int64
}

// ErrShutdown is what Run returns after Shutdown.
var ErrShutdown = errors.New("worker shut down")

// Worker processes request messages. Create it with New, call Run, and call
// Shutdown to stop it gracefully.
type Worker struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	// msgBackoff grows with consecutive transient errors handling
	// messages; the receive loop waits it out before polling again.
	msgBackoff retry.Backoff

	received, done, failed, duplicates, undecodable, errs atomic.Int64

	quit, abort         chan struct{} // closed by Shutdown: take no new message; its grace is over: release what is in hand
	quitOnce, abortOnce sync.Once
	mu                  sync.Mutex
	running             chan struct{} // closed when the Run in progress returns; nil when none
}

// New checks cfg and deps and returns a Worker.
func New(cfg Config, deps Deps) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.Requests == nil:
		return nil, errors.New("new worker: nil Requests queue")
	case deps.Responses == nil && deps.ReplyQueues == nil:
		return nil, errors.New("new worker: nil Responses queue and no ReplyQueues")
	case deps.Store == nil:
		return nil, errors.New("new worker: nil Store")
	case deps.Classifier == nil:
		return nil, errors.New("new worker: nil Classifier")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Worker{
		cfg:        cfg,
		deps:       deps,
		log:        deps.Logger.With("component", "worker", "worker", cfg.Name),
		msgBackoff: retry.Backoff{Min: cfg.ErrorBackoff, Max: cfg.MaxErrorBackoff},
		quit:       make(chan struct{}),
		abort:      make(chan struct{}),
	}, nil
}

// Stats returns the worker's counters.
func (w *Worker) Stats() Stats {
	return Stats{
		Received:    w.received.Load(),
		Done:        w.done.Load(),
		Failed:      w.failed.Load(),
		Duplicates:  w.duplicates.Load(),
		Undecodable: w.undecodable.Load(),
		Errors:      w.errs.Load(),
	}
}

// Shutdown stops the worker gracefully, as an instance being stopped must:
// Run takes no new message (a long poll in progress runs to its end, unless
// CancelReceiveOnShutdown, and the messages it brings are released at once),
// finishes the messages in hand, and returns ErrShutdown; then Shutdown
// returns nil. If ctx ends first, the messages still in hand are released for
// other workers (visible at once, not deleted) and Shutdown returns
// ctx.Err() once Run has returned. After Shutdown, Run returns ErrShutdown
// at once.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	w.quitOnce.Do(func() { close(w.quit) })
	running := w.running
	w.mu.Unlock()
	if running == nil {
		return nil
	}
	select {
	case <-running:
		return nil
	case <-ctx.Done():
		w.abortOnce.Do(func() { close(w.abort) })
		<-running
		return ctx.Err()
	}
}

// Run processes messages until the queue has stayed empty for IdleTimeout
// with no message in hand (it returns nil: the worker stopped itself), until
// Shutdown (it returns ErrShutdown), or until ctx is cancelled (it returns
// ctx.Err()). On cancel, messages in hand are not deleted: they are made
// visible again for another worker. Run waits for the goroutines of the
// messages in hand before it returns. Run must not be called concurrently.
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.running != nil {
		w.mu.Unlock()
		return errors.New("worker run: already running")
	}
	select {
	case <-w.quit:
		w.mu.Unlock()
		return ErrShutdown
	default:
	}
	running := make(chan struct{})
	w.running = running
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.running = nil
		w.mu.Unlock()
		close(running)
	}()

	// work is the context of the messages in hand: it ends with ctx, or
	// when Shutdown's grace is over. loop, the receive loop's, also ends
	// at Shutdown.
	work, cancelWork := context.WithCancel(ctx)
	defer cancelWork()
	loop, cancelLoop := context.WithCancel(work)
	defer cancelLoop()
	go func() {
		select {
		case <-w.quit:
			w.log.Info("stopping: finishing the requests in hand; taking no new ones")
			cancelLoop()
		case <-loop.Done():
			return
		}
		select {
		case <-w.abort:
			w.log.Warn("stopping: grace period over; releasing the requests still in hand to other workers")
			cancelWork()
		case <-work.Done():
		}
	}()
	poll := work
	if w.cfg.CancelReceiveOnShutdown {
		poll = loop
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	capacity := w.cfg.Concurrency + w.cfg.Hold
	finished := make(chan struct{}, capacity)
	slots := make(chan struct{}, w.cfg.Concurrency) // a message being processed holds one
	inHand := 0
	idleSince := w.deps.Now()
	recvBackoff := retry.Backoff{Min: w.cfg.ErrorBackoff, Max: w.cfg.MaxErrorBackoff}
	w.log.Info("worker started", "concurrency", w.cfg.Concurrency, "idle_timeout", w.cfg.IdleTimeout)

	// stopping reports whether the loop must end: Shutdown was called (the
	// loop context's cancel may still be on its way) or ctx ended.
	stopping := func() bool {
		select {
		case <-w.quit:
			return true
		default:
			return loop.Err() != nil
		}
	}
	// stopped ends the loop: ctx.Err() when ctx ended, else (Shutdown)
	// ErrShutdown once the messages in hand are finished or released.
	stopped := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		w.log.Info("stopping: waiting for the requests in hand", "in_hand", inHand)
		wg.Wait()
		w.log.Info("worker stopped", "stats", fmt.Sprintf("%+v", w.Stats()))
		return ErrShutdown
	}
	for {
		// Collect finished messages without blocking; the idle clock
		// restarts when the last one in hand is done.
		for drained := false; !drained; {
			select {
			case <-finished:
				inHand--
				idleSince = w.deps.Now()
			default:
				drained = true
			}
		}
		if stopping() {
			return stopped()
		}
		// Receive when no message waits for a slot: then one Receive
		// takes a batch (up to the free capacity), instead of one call
		// for each message that finishes.
		if inHand == capacity || inHand > w.cfg.Concurrency {
			select {
			case <-loop.Done():
				return stopped()
			case <-finished:
				inHand--
				idleSince = w.deps.Now()
			}
			continue
		}

		wait := w.cfg.ReceiveWait
		if w.cfg.IdleTimeout > 0 {
			remaining := w.cfg.IdleTimeout
			if inHand == 0 {
				remaining -= w.deps.Now().Sub(idleSince)
				if remaining <= 0 {
					w.log.Info("worker stopping: queue empty", "idle", w.deps.Now().Sub(idleSince))
					return nil
				}
			}
			wait = min(wait, remaining)
		}
		if d := max(recvBackoff.Delay(), w.msgBackoff.Delay()); d > 0 {
			if retry.Sleep(loop, min(d, wait)) != nil {
				return stopped()
			}
		}

		msgs, err := w.receive(poll, min(w.cfg.BatchSize, capacity-inHand), wait)
		if stopping() {
			// Stopping: what the last poll brought goes back at once.
			for _, m := range msgs {
				w.release(ctx, w.log.With("message", m.ID), m.ReceiptHandle)
			}
			return stopped()
		}
		if err != nil {
			w.errs.Add(1)
			w.deps.Metrics.receiveError()
			w.log.Warn("receive requests: transient error; backing off", "err", err, "backoff", recvBackoff.Fail())
			continue
		}
		recvBackoff.Reset()
		if len(msgs) > 0 {
			idleSince = w.deps.Now()
		}
		for _, m := range msgs {
			inHand++
			wg.Go(func() {
				// The message leaves the hand when its slot frees (or
				// when handle returns, if it never took one): a delete
				// waiting for its batch does not keep the next receive.
				var once sync.Once
				out := func() { once.Do(func() { finished <- struct{}{} }) }
				defer out()
				w.handle(work, m, slots, out)
			})
		}
	}
}

func (w *Worker) receive(ctx context.Context, max int, wait time.Duration) ([]elastiq.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, wait+w.cfg.OpTimeout)
	defer cancel()
	msgs, err := w.deps.Requests.Receive(ctx, max, wait)
	if err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	w.received.Add(int64(len(msgs)))
	w.deps.Metrics.receivedN(len(msgs))
	return msgs, nil
}

// handle takes one delivery from receipt to delete. It processes the
// message holding one of slots, which it frees (and calls freed) once the
// response is sent: the delete, which may wait to share a batch call, keeps
// neither another message nor the next receive waiting. Every error path leaves the message undeleted (so it is
// delivered again) except an undecodable body, which no delivery could ever
// process.
func (w *Worker) handle(ctx context.Context, m elastiq.Message, slots chan struct{}, freed func()) {
	log := lazyWith(w.log, slog.String("message", m.ID), slog.Int("receive_count", m.ReceiveCount))
	req, err := elastiq.DecodeRequest(m.Body)
	if err != nil {
		w.undecodable.Add(1)
		w.deps.Metrics.outcome(OutcomeUndecodable)
		log.Warn("dropping undecodable message", "err", err)
		if err := w.op(ctx, func(ctx context.Context) error {
			return w.deps.Requests.Delete(ctx, m.ReceiptHandle)
		}); err != nil && ctx.Err() == nil {
			w.transient(log, "delete undecodable message", err)
		}
		return
	}
	log = lazyWith(log, slog.String("id", string(req.ID)))

	stopHeartbeat := w.heartbeat(ctx, log, m.ReceiptHandle)
	if !w.acquire(ctx, slots) {
		// Held, not started, when the worker stopped: another worker
		// can take it now.
		stopHeartbeat()
		w.release(ctx, log, m.ReceiptHandle)
		return
	}
	// Which worker took which delivery, even one that never finishes (a
	// worker killed mid-request): the story of a request in the logs.
	log.Info("request started")
	res, reused, err := w.result(ctx, req, m.ReceiveCount)
	if err == nil {
		err = w.respond(ctx, log, req.ReplyTo, res)
	}
	stopHeartbeat()
	<-slots
	freed()
	if err == nil {
		err = w.op(ctx, func(ctx context.Context) error { return w.deps.Requests.Delete(ctx, m.ReceiptHandle) })
		if errors.Is(err, elastiq.ErrInvalidReceipt) {
			// Another delivery of this message is now current; it will
			// find output/<id> and finish the job.
			log.Info("request redelivered before delete; leaving it to the newer delivery", "err", err)
			err = nil
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			w.release(ctx, log, m.ReceiptHandle)
			return
		}
		w.transient(log, "handle request", err)
		return
	}
	w.msgBackoff.Reset()
	if reused {
		w.duplicates.Add(1)
	}
	outcome := OutcomeDone
	if res.Status == elastiq.StatusFailed {
		w.failed.Add(1)
		outcome = OutcomeFailed
	} else {
		w.done.Add(1)
	}
	if reused {
		outcome = OutcomeDuplicate
	}
	w.deps.Metrics.outcome(outcome)
	log.Info("request handled", "status", res.Status, "label", res.Label, "reused", reused, "classify", res.Classify)
}

// result returns the stored result of req when output/<id> exists (a
// duplicate delivery) and otherwise classifies the input and stores the
// result. reused reports the former. On a first delivery (receiveCount 1)
// there is nothing to reuse, so output/ is not read: a call saved on almost
// every request. Were a first delivery a duplicate after all (a request sent
// twice, or receive counts lost with a queue's state), it is classified
// again and its output and response written again, with the same label.
func (w *Worker) result(ctx context.Context, req elastiq.Request, receiveCount int) (res elastiq.Result, reused bool, err error) {
	outKey := elastiq.OutputKey(req.ID)
	var stored elastiq.Object
	err = elastiq.ErrNotFound
	if receiveCount != 1 {
		err = w.op(ctx, func(ctx context.Context) (err error) {
			stored, err = w.deps.Store.Get(ctx, outKey)
			return err
		})
	}
	switch {
	case err == nil:
		if res, err := elastiq.DecodeResult(stored.Body); err == nil && res.ID == req.ID {
			return res, true, nil
		}
		w.log.Warn("overwriting unreadable output", "key", outKey, "id", req.ID)
	case !errors.Is(err, elastiq.ErrNotFound):
		return elastiq.Result{}, false, fmt.Errorf("get %s: %w", outKey, err)
	}

	res, err = w.classify(ctx, req)
	res.Deliveries = receiveCount
	if err != nil {
		return elastiq.Result{}, false, err
	}
	body, err := elastiq.EncodeResult(res)
	if err != nil {
		return elastiq.Result{}, false, fmt.Errorf("encode result %s: %w", req.ID, err)
	}
	obj := elastiq.Object{Body: body, ContentType: "application/json"}
	if err := w.storeOp(ctx, req.ID, "put "+outKey, func(ctx context.Context) error { return w.deps.Store.Put(ctx, outKey, obj) }); err != nil {
		return elastiq.Result{}, false, fmt.Errorf("put %s: %w", outKey, err)
	}
	return res, false, nil
}

// storeOp runs a store call, retrying it with backoff for up to StoreRetry
// while it fails (not found is an answer, not a failure), and returns its
// last error.
func (w *Worker) storeOp(ctx context.Context, id elastiq.RequestID, what string, f func(context.Context) error) error {
	deadline := w.deps.Now().Add(w.cfg.StoreRetry)
	b := retry.Backoff{Min: w.cfg.ErrorBackoff, Max: w.cfg.MaxErrorBackoff}
	for {
		err := w.op(ctx, f)
		if err == nil || errors.Is(err, elastiq.ErrNotFound) || ctx.Err() != nil {
			return err
		}
		wait := b.Fail()
		if w.deps.Now().Add(wait).After(deadline) {
			return err
		}
		w.log.Warn("store failed; holding the request and retrying", "id", id, "op", what, "err", err, "retry_in", wait)
		if retry.Sleep(ctx, wait) != nil {
			return err
		}
	}
}

// classify reads req's input and classifies it. A missing input or a
// classifier error is a failed Result, not an error; errors are transient
// (store unreachable, ctx cancelled).
func (w *Worker) classify(ctx context.Context, req elastiq.Request) (elastiq.Result, error) {
	res := elastiq.Result{
		ID:          req.ID,
		FileName:    req.FileName,
		Worker:      w.cfg.Name,
		SubmittedAt: req.SubmittedAt,
		StartedAt:   w.deps.Now(),
	}
	inKey := req.InputKey
	if inKey == "" {
		inKey = elastiq.InputKey(req.ID)
	}
	// An image that came in the request need not be read from input/.
	input, err := w.input(ctx, req.ID, inKey, req.Image)
	var second elastiq.Object
	if err == nil && req.Kind == elastiq.KindVerify {
		second, err = w.input(ctx, req.ID, cmp.Or(req.SecondKey, elastiq.SecondInputKey(req.ID)), req.Second)
	}
	switch {
	case errors.Is(err, elastiq.ErrNotFound):
		res.Status, res.Error = elastiq.StatusFailed, "input not found"
		res.FinishedAt = w.deps.Now()
		return res, nil
	case err != nil:
		return elastiq.Result{}, err
	}

	// A recognition answers with a gallery at least as new as the web
	// tier's latest change when it sent the request.
	if w.deps.Gallery != nil && req.Kind != elastiq.KindEnroll {
		if err := w.deps.Gallery.Ensure(ctx, req.GalleryRevision); err != nil {
			return elastiq.Result{}, err
		}
	}
	start := w.deps.Now()
	var label string
	fv, canVerify := w.deps.Classifier.(elastiq.FaceVerifier)
	fr, canRecognize := w.deps.Classifier.(elastiq.FaceRecognizer)
	switch {
	case req.Kind == elastiq.KindVerify && !canVerify:
		err = errors.New("verify: this worker's classifier cannot compare faces")
	case req.Kind == elastiq.KindVerify:
		var v elastiq.Verification
		if v, err = fv.Verify(ctx, input.Body, second.Body, req.Options); err == nil {
			label, res.Verification, res.Threshold = "different", &v, &v.Threshold
			if v.Same {
				label = "same"
			}
		}
	case req.Kind == elastiq.KindEnroll:
		var enrolled *elastiq.Enrolled
		if enrolled, err = w.enroll(ctx, req, input.Body); err == nil {
			label, res.Enrolled = enrolled.Subject, enrolled
		} else if !errors.Is(err, errCannotEnroll) {
			return elastiq.Result{}, err // the store: transient
		}
	case req.Kind != elastiq.KindRecognize:
		err = fmt.Errorf("request kind %q: want %q, %q or %q", req.Kind, elastiq.KindRecognize, elastiq.KindVerify, elastiq.KindEnroll)
	case canRecognize:
		// Every face with its evidence, at the client's options.
		var r elastiq.Recognition
		if r, err = fr.RecognizeFaces(ctx, input.Body, req.Options); err == nil {
			label, res.Faces = r.Label, r.Faces
			res.Threshold, res.Certain, res.MinZ = &r.Threshold, &r.Certain, &r.MinZ
		}
	default:
		label, err = w.deps.Classifier.Classify(ctx, input.Body)
	}
	res.FinishedAt = w.deps.Now()
	res.Classify = res.FinishedAt.Sub(start)
	w.deps.Metrics.classified(res.Classify)
	if err != nil {
		if ctx.Err() != nil {
			// Interrupted, not failed: the message goes back to the queue.
			return elastiq.Result{}, fmt.Errorf("classify %s: %w", req.ID, ctx.Err())
		}
		res.Status, res.Error = elastiq.StatusFailed, "classify: "+err.Error()
		if req.Kind == elastiq.KindEnroll {
			res.Error = err.Error() // "cannot enrol: ..."
		}
		return res, nil
	}
	res.Status, res.Label = elastiq.StatusDone, label
	return res, nil
}

// errCannotEnroll marks what makes an enrolment fail for good (its image,
// its subject, a worker without a gallery), as against a store error.
var errCannotEnroll = errors.New("cannot enrol")

// enroll embeds the face of image and stores it under req.Subject, with the
// request's ID as the face's.
func (w *Worker) enroll(ctx context.Context, req elastiq.Request, image []byte) (*elastiq.Enrolled, error) {
	fe, ok := w.deps.Classifier.(elastiq.FaceEnroller)
	if !ok || w.deps.Gallery == nil {
		return nil, fmt.Errorf("%w: this worker's classifier has no gallery to change", errCannotEnroll)
	}
	if err := elastiq.ValidateSubject(req.Subject); err != nil {
		return nil, fmt.Errorf("%w: %w", errCannotEnroll, err)
	}
	face, emb, err := fe.EmbedFace(ctx, image, req.LargestFace)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", errCannotEnroll, err)
	}
	f := elastiq.GalleryFace{ID: req.ID, Subject: req.Subject, Embedding: emb, Model: fe.EmbeddingModel()}
	key := elastiq.FaceKey(req.Subject, req.ID)
	if err := w.storeOp(ctx, req.ID, "put "+key, func(ctx context.Context) error {
		return w.deps.Store.Put(ctx, key, FaceObject(f, face, req.FileName))
	}); err != nil {
		return nil, fmt.Errorf("enrol %s: %w", req.ID, err)
	}
	return &elastiq.Enrolled{Subject: req.Subject, FaceID: req.ID, Box: face.Box, Score: face.Score}, nil
}

// input is the image at key, or inline when the request carried it.
func (w *Worker) input(ctx context.Context, id elastiq.RequestID, key string, inline []byte) (elastiq.Object, error) {
	if len(inline) > 0 {
		return elastiq.Object{Body: inline}, nil
	}
	var obj elastiq.Object
	err := w.storeOp(ctx, id, "get "+key, func(ctx context.Context) (err error) {
		obj, err = w.deps.Store.Get(ctx, key)
		return err
	})
	if err != nil && !errors.Is(err, elastiq.ErrNotFound) {
		return obj, fmt.Errorf("get %s: %w", key, err)
	}
	return obj, err
}

// respond sends res on the response queue, or on the queue at replyTo when
// the request named one. A reply queue that no longer exists means the web
// instance that waited is gone: the result is in output/, where any other
// instance finds it, so that is no error.
func (w *Worker) respond(ctx context.Context, log *slog.Logger, replyTo string, res elastiq.Result) error {
	body, err := elastiq.EncodeResult(res)
	if err != nil {
		return fmt.Errorf("encode result %s: %w", res.ID, err)
	}
	q, err := w.deps.ReplyQueues.Destination(replyTo, w.deps.Responses)
	if err == nil && q == nil {
		log.Warn("the request names no reply queue and there is no response queue; the result is in output/ alone")
		return nil
	}
	if err == nil {
		err = w.op(ctx, func(ctx context.Context) error { return q.Send(ctx, body) })
	}
	if elastiq.ReplyGone(replyTo, err) {
		log.Info("reply queue gone (its web instance stopped); the result stays in output/", "reply_to", replyTo)
		return nil
	}
	if err != nil {
		return fmt.Errorf("send response %s: %w", res.ID, err)
	}
	return nil
}

// acquire takes one of slots for a message in hand. A free slot is taken
// at once, even when the worker is stopping (a message in hand is
// finished); a held message waits for one, and gives up (false) when the
// worker stops or ctx ends.
func (w *Worker) acquire(ctx context.Context, slots chan struct{}) bool {
	select {
	case slots <- struct{}{}:
		return true
	default:
	}
	select {
	case slots <- struct{}{}:
		return true
	case <-w.quit:
		return false
	case <-ctx.Done():
		return false
	}
}

// heartbeat extends the message's visibility every VisibilityTimeout/2 until
// the returned stop function is called; stop waits for the goroutine.
func (w *Worker) heartbeat(ctx context.Context, log *slog.Logger, receipt string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(w.cfg.VisibilityTimeout / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := w.op(ctx, func(ctx context.Context) error {
				return w.deps.Requests.ChangeVisibility(ctx, receipt, w.cfg.VisibilityTimeout)
			})
			switch {
			case err == nil:
				w.deps.Metrics.extended()
			case ctx.Err() != nil:
			case errors.Is(err, elastiq.ErrInvalidReceipt):
				log.Warn("heartbeat: message was redelivered; stop extending", "err", err)
				return
			default:
				log.Warn("heartbeat: extend visibility", "err", err)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// release makes an interrupted message visible again at once, so another
// worker need not wait out the visibility timeout. It runs after ctx is
// cancelled, so it gets its own short deadline.
func (w *Worker) release(ctx context.Context, log *slog.Logger, receipt string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(w.cfg.OpTimeout, 2*time.Second))
	defer cancel()
	if err := w.deps.Requests.ChangeVisibility(ctx, receipt, 0); err != nil {
		log.Info("interrupted; message left to its visibility timeout", "err", err)
		return
	}
	log.Info("interrupted; message released for redelivery")
}

// transient records and logs, on the message's log (with its request's
// ID once known), an error that leaves the message for redelivery.
func (w *Worker) transient(log *slog.Logger, op string, err error) {
	w.errs.Add(1)
	w.deps.Metrics.outcome(OutcomeError)
	log.Warn(op+": transient error; left for redelivery", "err", err, "backoff", w.msgBackoff.Fail())
}

// op runs f with OpTimeout.
func (w *Worker) op(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.OpTimeout)
	defer cancel()
	return f(ctx)
}

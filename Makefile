# elastiq: the first two commands on a fresh clone are `make run` and `make test`.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c

ADDR    ?= 127.0.0.1:8080
DATA    ?= $(CURDIR)/.data
MODELS  ?= $(CURDIR)/.models
export ELASTIQ_MODELS := $(MODELS)

# Every Go module of the go.work workspace.
MODULES := . services/elastiq services/web services/worker services/scaler infra

.PHONY: run test test-unit test-iam bench soak eval demo simulate screenshot bundle models build vet clean

## models: fetch the ONNX Runtime library and the face models by package name (idempotent, offline afterwards)
models:
	@scripts/fetch-models.sh "$(MODELS)"

## build: every program into bin/
build:
	@mkdir -p bin
	go build -o bin/ ./services/embedded/cmd/elastiq ./services/web/cmd/loadgen ./services/scaler/cmd/simulate \
		./services/web/cmd/web ./services/worker/cmd/worker ./services/scaler/cmd/scaler ./services/embedded/cmd/distributed

## run: the whole elastic pipeline on this machine (embedded queue, store, cache and worker fleet) on $(ADDR); the
## gallery's admin token is made once in $(DATA)/admin-token and printed
run: models build
	@mkdir -p "$(DATA)" && [[ -s "$(DATA)/admin-token" ]] || (umask 077 && head -c 24 /dev/urandom | base64 | tr '+/' '-_' > "$(DATA)/admin-token")
	bin/elastiq -addr "$(ADDR)" -data "$(DATA)" -admin-token-file "$(DATA)/admin-token"

## test: vet and test every package of every module with the race detector, going on after a failure and ending with
## the list of what failed; fetches the models, validates the worker image's Packer template, and starts (then stops)
## the servers the integration tests talk to on loopback: moto_server (SQS, S3, EC2) and memcached. A missing
## server, model or tool fails the tests that need it.
test: models
	@scripts/test.sh $(MODULES)

## test-unit: the unit tests alone (go test -short): no models, servers or tools; the tests that need them skip
test-unit:
	@scripts/test.sh -short $(MODULES)

## test-iam: show that the distributed end-to-end test has teeth: run it once per action of the web and worker IAM
## policies with that action dropped, and expect each run to fail (about a minute per action; PATTERN=worker to narrow;
## LAYOUT=loadBalanced for the load-balanced layout's test and policies, about two minutes per action)
test-iam: models
	@LAYOUT=$(or $(LAYOUT),single) scripts/iam-teeth.sh $(if $(PATTERN),"$(PATTERN)")

## bench: the pipeline's overhead, the classifier's speed, the nearest-face search at 1k to 100k enrolled faces (one
## core), the distributed mode's burst on moto (time, and S3 and SQS calls per request), and the 100 CSE546 images
## beside 4,000 slow connections against alone
bench: models
	cd services/embedded && go test -run '^$$' -bench Pipeline -benchtime 100x -count 1 .
	cd services/worker && go test -run '^$$' -bench 'Classify|Embedding' -benchtime 200x -count 1 ./classify/face/
	cd services/worker && GOMAXPROCS=1 go test -run '^$$' -bench Search -benchtime 200x -count 1 ./classify/face/
	@scripts/bench-distributed.sh
	go test -run '^$$' -bench SlowClients -benchtime 3x -count 1 ./services/embedded/e2e/

## soak: 200,000 requests through the embedded stack at 300 a second with -retention 1m (about 11 minutes): memory
## and disk after the first 20,000 and at the end (SOAK_REQUESTS, SOAK_RATE, SOAK_RETENTION change them)
soak:
	cd services/embedded && go test -run '^$$' -bench Soak -benchtime 1x -count 1 -timeout 60m .

## eval: how well faces are recognised: the LFW sample (people named in photos that are not enrolled, strangers
## answered Unknown) and the CSE546 photos, each also mirrored, resized, darker, recompressed, turned and small in a
## large photo (figures in services/worker/classify/README.md)
eval: models
	cd services/worker && go run ./cmd/eval -models "$(MODELS)" -gallery ../../datasets/lfw-sample/gallery \
		-queries ../../datasets/lfw-sample -alter
	cd services/worker && go run ./cmd/eval -models "$(MODELS)" -gallery ../../datasets/cse546-faces \
		-queries ../../datasets/cse546-faces -alter -misses 10

## demo: start the stack, send the CSE546 workload at it (100 at once), check every answer, watch the fleet
## scale in, draw the timeline into sim-out/, keep the stack up a minute for its live dashboard (URL printed; HOLD=0
## skips; MODE=distributed for the web, scaler and worker programs on moto;
## POLICY=classic for the original policy, BOOT_DELAY, TAIL)
demo: models build
	@scripts/demo.sh "$(ADDR)" "$(DATA)"

## screenshot: redraw docs/dashboard.png, the README's picture of the dashboard, with its browser test (needs chromium,
## which `make test` installs)
screenshot:
	cd services/embedded && ELASTIQ_TEST_CHROMIUM=$${ELASTIQ_TEST_CHROMIUM:-$$(command -v chromium)} \
		ELASTIQ_DASHBOARD_SCREENSHOT=$(CURDIR)/docs/dashboard.png go test -count=1 -run '^TestDashboardInBrowser$$' .

## bundle: the deployment bundle (linux/amd64 web, scaler, worker; models.tar.gz; SHA256SUMS) into .bundle/ (see ami/README.md)
bundle: models
	go run ./infra/deploy/cmd/bundle -out .bundle

## simulate: compare the scaling policies (classic vs backlog) in the simulator: table on stdout, SVG timelines in sim-out/
simulate:
	go run ./services/scaler/cmd/simulate -out sim-out

vet:
	@for m in $(MODULES); do (cd $$m && go vet ./...); done

## clean: remove everything make creates: programs, models, the embedded stack's data, timelines, the bundle, the
## test servers' state
clean:
	-@scripts/test-servers.sh stop 2>/dev/null
	rm -rf bin .models .data sim-out .bundle .test-servers

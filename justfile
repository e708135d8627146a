# The developer's verbs. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Plugins build into their own target dir (override to share a cache in CI).
plugins_target := env_var_or_default("CORRAL_PLUGINS_TARGET_DIR", justfile_directory() / "plugins/target")

default:
    @just --list

# Start Corral on the embedded default (SQLite file ./corral.db) and open the dashboard (signed in on the first start); DATABASE_URL=postgres://… for PostgreSQL.
serve *args:
    cargo run --quiet -p corral -- serve --open {{args}}

# Build every plugin: Rust (cargo), Python (componentize-py) and JavaScript (componentize-js); `just plugins python` builds one language. Toolchains install into plugins/python/.venv and plugins/js/node_modules.
plugins *languages:
    CORRAL_PLUGINS_TARGET_DIR="{{plugins_target}}" scripts/plugins {{languages}}

# Run one attempt of a plugin locally: `just run echo '{"hello":"world"}'`, `just run python/greet '{"name":"Ada"}'`, `just run js/csv-stats …`.
run plugin="markdown" input='{"markdown":"# Hello\n\nfrom *Corral*"}':
    CORRAL_PLUGINS_TARGET_DIR="{{plugins_target}}" scripts/plugins {{ if plugin =~ "^python/" { "python" } else if plugin =~ "^js/" { "js" } else { "rust" } }}
    cargo run --quiet -p corral -- run "{{plugins_target}}/{{ if plugin =~ "/" { plugin } else { "wasm32-wasip2/release/" + replace(plugin, '-', '_') } }}.wasm" --input '{{input}}'

# Every test: unit, conformance and end to end (builds the plugins it needs), on the
# PostgreSQL at CORRAL_TEST_POSTGRES, else 127.0.0.1:5432, else a throwaway cluster.
test:
    # The tests run the `corral` binary; built here, it is not built inside
    # the test process, where its build blocked the first tests' threads for
    # minutes and ate into the patience of tests already waiting.
    cargo build -p corral --bin corral
    scripts/with-postgres cargo test --workspace

# Sandbox cost per attempt beside native Rust (one JSON line).
bench-runtime:
    cargo bench -p corral-tests --bench runtime

# The durable queue on PostgreSQL and SQLite: in process (enqueue, full pipeline, no-sandbox baseline, pickup latency), then the real `corral serve` binary beside graphile_worker (bench-serve).
bench-queue:
    cargo bench -p corral-tests --bench queue
    cargo bench -p corral-tests --bench serve

# The real `corral serve` binary draining jobs, beside graphile_worker in the same run; four hosts; pickup under a backlog.
bench-serve:
    cargo bench -p corral-tests --bench serve

# One claim's cost with 1, 100, 1,000 and 10,000 tenants waiting; then outcome batches and heartbeats alone and beside 2,048 running jobs of other tenants.
bench-claims:
    cargo bench -p corral-tests --bench claims

# The dashboard's reads (jobs list and its filters, overview, dead letters, a bulk dry run) on a tenant with 1,000,000 finished jobs, through `corral serve`, beside a 1,000-job tenant.
bench-dashboard:
    cargo bench -p corral-tests --bench dashboard

# Workflows: a 10-step chain and a 100-way fan-out of `echo`, beside plain jobs (overhead per step).
bench-workflows:
    cargo bench -p corral-tests --bench workflows

fmt:
    cargo fmt --all
    cd plugins && cargo fmt --all

lint:
    cargo fmt --all --check
    cd plugins && cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    cd plugins && cargo clippy --target wasm32-wasip2 --target-dir "{{plugins_target}}" -- -D warnings

# Fuzz the HTTP API against its OpenAPI document with schemathesis (from PyPI): no 5xx, no response off the schema.
schemathesis:
    scripts/schemathesis

# Regenerate the TypeScript and Python clients' generated code from the OpenAPI document.
clients:
    scripts/clients

# Fail when the generated clients are stale against the OpenAPI document.
clients-check:
    scripts/clients --check

# What CI runs.
ci: plugins lint test schemathesis clients-check

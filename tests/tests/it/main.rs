//! The end-to-end suite as one test binary (each binary links wasmtime and
//! sqlx, so one link instead of one per area): a module per area, each
//! running its tests on both backends where the area has two.

mod api;
mod cli;
mod clients;
mod dashboard;
mod dashboard_api;
mod guests;
mod hostile_tenants;
mod hosts;
mod metrics;
mod ops;
mod outbound;
mod runtime;
mod schedules;
mod store;
mod worker;
mod workflows;
mod workflows_api;

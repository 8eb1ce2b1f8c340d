//! The integration tests, as one test binary: each module is one area of auditum, run against
//! real servers on 127.0.0.1:0. One binary links the dependencies once instead of once per file.

mod common;

mod actor_index;
mod alerts;
mod analytics;
mod archive_tiers;
mod cli;
mod config_example;
mod crash;
mod deploy;
mod erasure;
mod hardening;
mod http_api;
mod ingest;
mod legal_hold;
mod ops;
mod proof;
mod properties;
mod python_client;
mod query;
mod relay;
mod replica;
mod retention;
mod s3;
mod sdk;
mod security;
mod startup_checks;
mod store_conformance;
mod subscribe;
mod summarize;
mod tamper;
mod validation;
mod vectors;
mod wal;

//! The integration tests: real programs run under `intercept`, and the
//! bytes they print are checked. One binary, one module per topic.

mod common;

mod abi;
mod apps;
mod caller;
mod cli;
mod clients;
mod docs;
mod files;
mod h2;
mod har;
mod host;
mod http;
mod https;
mod layout;
mod passthrough;
mod python;
mod stubs;
mod supervise;
mod tcp;
mod wiremock;

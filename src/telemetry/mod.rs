//! What the operations team sees besides the request log: Prometheus metrics on a bind
//! address of their own (`metrics`, `endpoint`) and security events as a stream of their
//! own (`security`), and traces across nodes (`traces`, OpenTelemetry). See
//! docs/operations.md, "Metrics", "Security events" and "Traces".

pub mod endpoint;
pub mod metrics;
pub mod security;
pub mod traces;

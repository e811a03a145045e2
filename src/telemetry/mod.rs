//! What the operations team sees besides the request log: Prometheus metrics on a bind
//! address of their own (`metrics`, `endpoint`) and security events as a stream of their
//! own (`security`). See docs/operations.md, "Metrics" and "Security events".

pub mod endpoint;
pub mod metrics;
pub mod security;

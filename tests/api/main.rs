//! The integration suite: the real server over HTTP, a real SMTP server on loopback,
//! SQLite always and PostgreSQL when `TEST_DATABASE_URL` is set.

mod support;

mod accounts;
mod assessments;
mod auth_flows;
mod backup;
mod browser;
mod certificates;
mod concurrency;
mod conventions;
mod crash;
mod curriculum;
mod enrolment;
mod enrolment_access;
mod faults;
mod faults_database;
mod final_year;
mod fuzz_findings;
mod identity_personal;
mod independent_verifiers;
mod integrations;
mod oidc;
mod openapi;
mod pace_completion;
mod pace_dates;
mod pace_extent;
mod pace_world;
mod passkeys;
mod placement_walk;
mod portfolio;
mod portfolio_access;
mod refusals;
mod render_pdf;
mod review_access;
mod review_auth;
mod security_auth;
mod security_consent;
mod security_idempotency;
mod security_plumbing;
mod security_secrets;
mod security_stepup;
mod security_webhooks;
mod talks;

//! Privacy (dataskydd): keeping patient data out of the portfolio, and the rights the
//! GDPR gives the people whose portfolios these are.
//!
//! - `guard`: free text that looks like it holds a personnummer or samordningsnummer is
//!   refused unless the client acknowledges that it is not patient data.
//! - `attachment_types`: what media types a region accepts for attachments (PDF only
//!   until it opts in to photos); its endpoints in `http_attachment_types`.
//! - `retention`: a region's retention period (gallring) and the daily job deleting
//!   closed enrolments past it.
//! - `restriction`: restriction of processing (read-only, hidden from lists).
//! - `erasure`: erasing an enrolment's records that no signed record depends on.
//! - `http`: the administrators' endpoints of the three above.
//!
//! The export (Art. 15 and 20) is the feature `data_export`, above the ones it reads.

pub mod account_erasure;
pub mod attachment_types;
pub mod erasure;
pub mod guard;
pub mod http;
pub mod http_attachment_types;
pub mod restriction;
pub mod retention;

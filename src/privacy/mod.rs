//! Privacy (dataskydd): keeping patient data out of the portfolio, and the rights the
//! GDPR gives the people whose portfolios these are.
//!
//! - `guard`: free text that looks like it holds a personnummer or samordningsnummer is
//!   refused unless the client acknowledges that it is not patient data.
//! - `attachment_types`: what media types a region accepts for attachments (PDF only
//!   until it opts in to photos).
//! - `export`, `export_archive`: `GET /me/export`, everything about the caller as one
//!   streamed archive (Art. 15 and 20).

pub mod attachment_types;
pub mod export;
pub mod export_archive;
pub mod guard;
pub mod http;

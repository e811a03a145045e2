//! Privacy (dataskydd): keeping patient data out of the portfolio, and the rights the
//! GDPR gives the people whose portfolios these are.
//!
//! - `guard`: free text that looks like it holds a personnummer or samordningsnummer is
//!   refused unless the client acknowledges that it is not patient data.

pub mod guard;

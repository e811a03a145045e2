//! The dossier: a trainee's complete portfolio as signed JSON or PDF, with public
//! verification and the service's public keys. `build` assembles the content (and its
//! PDF), `signing` holds the keys, the signature and its verification, `http` the
//! handlers.

pub mod build;
pub mod http;
pub mod pdf;
pub mod pdf_courses;
pub mod pdf_signers;
pub mod signing;

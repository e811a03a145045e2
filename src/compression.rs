//! Response compression: gzip where it pays, nothing for small answers.
//!
//! actix-web's `Compress` sets up a gzip encoder for every response to a client that
//! accepts gzip, whatever its size. Setting one up is not cheap: miniz_oxide allocates
//! and zeroes its hash tables (about 300 KB) for every encoder. Under callgrind that was
//! about 0.4 million instructions per response, more than the database work of a
//! logged activity (`docs/benchmarks.md`, "Compression of small answers"), to shrink a
//! 300-byte answer that fits one TCP segment either way.
//!
//! `Compress` takes no size predicate, but it leaves alone a response that already
//! names its `Content-Encoding`. So [`mark_small`] (inside `Compress`) names `identity`
//! on a response whose body is known and under [`MIN_COMPRESSED_BYTES`], and
//! [`unmark`] (outside `Compress`) takes that name off again before the response
//! leaves: clients see a plain response without `Content-Encoding`, as for a client that
//! does not accept gzip. Such a response does not depend on `Accept-Encoding`, so it
//! needs no `Vary: Accept-Encoding` either. Bodies of unknown size (streams) are
//! compressed as before.

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, CONTENT_ENCODING};
use actix_web::middleware::Next;

/// Bodies smaller than this go out uncompressed: with the response's headers they fit
/// one TCP segment (an Ethernet MTU of 1,500 bytes) compressed or not.
pub const MIN_COMPRESSED_BYTES: u64 = 1024;

const MARK: HeaderValue = HeaderValue::from_static("identity");

/// Inside `Compress`: marks a small response so that `Compress` leaves it alone.
pub async fn mark_small(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let mut res = next.call(req).await?;
    if is_small(res.response().body().size()) && !res.headers().contains_key(CONTENT_ENCODING) {
        res.headers_mut().insert(CONTENT_ENCODING, MARK);
    }
    Ok(res)
}

/// Outside `Compress`: takes the mark of [`mark_small`] off the response.
pub async fn unmark(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let mut res = next.call(req).await?;
    if res.headers().get(CONTENT_ENCODING) == Some(&MARK) {
        res.headers_mut().remove(CONTENT_ENCODING);
    }
    Ok(res)
}

/// Whether a body of this size is not worth compressing (empty bodies `Compress` skips
/// itself; a stream's size is unknown until sent).
fn is_small(size: BodySize) -> bool {
    matches!(size, BodySize::Sized(n) if n < MIN_COMPRESSED_BYTES)
}

#[cfg(test)]
#[path = "compression_tests.rs"]
mod tests;

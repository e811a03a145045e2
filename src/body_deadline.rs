//! Slow clients: a request's body must arrive within `CLIENT_BODY_TIMEOUT_SECONDS` of
//! its headers (which have `CLIENT_HEADER_TIMEOUT_SECONDS`, enforced by the HTTP
//! server). actix-web waits for a body as long as bytes keep coming, so a client sending
//! a byte a second would hold its connection (and the handler reading the body) for
//! hours; a few hundred of them would tie up a node.
//!
//! The middleware wraps every request's payload in a stream that ends with an error at
//! the deadline. Whatever reads the body (the JSON extractor, `http::read_body`, the
//! attachment upload) then fails, and the answer is replaced by a 408 that closes the
//! connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use futures_util::Stream;

use crate::app::AppState;
use crate::error::AppError;

/// A payload that fails once its deadline has passed.
struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

impl Stream for Deadline {
    type Item = Result<web::Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body was not received in time",
            )))));
        }
        Poll::Pending
    }
}

pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(timeout) = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.config.client_body_timeout)
    else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    // Most requests (GET) have no body: nothing to wait for.
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if !has_body {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    let expired = Arc::new(AtomicBool::new(false));
    let inner = req.take_payload();
    let deadline = Deadline {
        inner,
        sleep: Box::pin(tokio::time::sleep(timeout)),
        expired: expired.clone(),
    };
    req.set_payload(Payload::Stream {
        payload: Box::pin(deadline),
    });
    let res = next.call(req).await?;
    if !expired.load(Ordering::Relaxed) {
        return Ok(res.map_into_boxed_body());
    }
    // However the reader reported the failed body (400, 413 ...), the client hears
    // that it was too slow, and the connection is not kept.
    let (req, _) = res.into_parts();
    let answer = AppError::RequestTimeout(format!(
        "the request body did not arrive within {} s",
        timeout.as_secs()
    ))
    .error_response();
    Ok(ServiceResponse::new(req, answer))
}

//! Outgoing mail through lettre: `.eml` files in an outbox directory by default, SMTP by
//! configuration. Sending is blocking; the outbox worker (`crate::outbox`) runs it on
//! the blocking pool. Requests never send: they queue mail in the outbox.

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{FileTransport, Message, SmtpTransport, Transport};

use crate::config::{MailTransportConfig, SmtpSecurity};
use crate::error::AppError;

/// A message ready to send: plain text, Swedish first with English below, because
/// the audience is Swedish healthcare staff and invited external supervisors.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

#[derive(Clone)]
enum Transport_ {
    Outbox(FileTransport),
    Smtp(SmtpTransport),
}

#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    transport: Transport_,
}

impl Mailer {
    pub fn new(config: &MailTransportConfig, from: &str) -> Result<Mailer, AppError> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| AppError::Config(format!("MAIL_FROM {from:?}: {e}")))?;
        let transport = match config {
            MailTransportConfig::Outbox(dir) => {
                // Mails carry sign-in links and codes: for this user only.
                crate::storage::create_private_dir(dir)?;
                Transport_::Outbox(FileTransport::new(dir))
            }
            MailTransportConfig::Smtp {
                host,
                port,
                security,
                username,
                password,
            } => {
                let builder = match security {
                    SmtpSecurity::None => SmtpTransport::builder_dangerous(host.as_str()),
                    SmtpSecurity::StartTls => SmtpTransport::starttls_relay(host)
                        .map_err(|e| AppError::Config(format!("SMTP_HOST: {e}")))?,
                    SmtpSecurity::Tls => SmtpTransport::relay(host)
                        .map_err(|e| AppError::Config(format!("SMTP_HOST: {e}")))?,
                };
                let mut builder = builder
                    .port(*port)
                    .timeout(Some(std::time::Duration::from_secs(15)));
                if let (Some(u), Some(p)) = (username, password) {
                    builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
                }
                Transport_::Smtp(builder.build())
            }
        };
        Ok(Mailer { from, transport })
    }

    /// Sends one message; blocking.
    pub fn send(&self, mail: &Mail) -> Result<(), AppError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| AppError::Internal(format!("bad recipient {:?}: {e}", mail.to)))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|e| AppError::Internal(format!("cannot build mail: {e}")))?;
        let result = match &self.transport {
            Transport_::Outbox(t) => t.send(&message).map(|_| ()).map_err(|e| e.to_string()),
            Transport_::Smtp(t) => t.send(&message).map(|_| ()).map_err(|e| e.to_string()),
        };
        match result {
            Ok(()) => {
                tracing::info!(to = %mail.to, subject = %mail.subject, "mail sent");
                Ok(())
            }
            Err(e) => Err(AppError::Unavailable(format!(
                "mail could not be sent: {e}"
            ))),
        }
    }
}

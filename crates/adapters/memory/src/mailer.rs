use std::sync::Mutex;

use tenantry_ports::{MailError, Mailer, OutgoingEmail};

/// A [`Mailer`] that keeps what it was asked to send, for tests that read the mail.
#[derive(Debug, Default)]
pub struct RecordingMailer {
    sent: Mutex<Vec<OutgoingEmail>>,
}

impl RecordingMailer {
    /// Everything sent so far, oldest first.
    pub fn sent(&self) -> Vec<OutgoingEmail> {
        self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

#[async_trait::async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError> {
        self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(email.clone());
        Ok(())
    }
}

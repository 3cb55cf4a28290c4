//! The outgoing side: [`replies`] writes every mail the gateway sends (answers,
//! notices, reminders), [`transport`] hands a written mail to the SMTP relay or
//! writes it to a folder.

pub mod replies;
pub mod transport;

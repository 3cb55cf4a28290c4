//! The queue: the durable [`spool`] (with the at-most-once ledger), the [`runner`]
//! both spool queues share (tasks, permits, back-off, scans), and the two jobs it runs:
//! [`worker`] for inbound messages (ask the main server, stage the reply) and
//! [`dispatch`] for `outgoing/` (hand each reply to the transport).

pub mod dispatch;
pub mod runner;
pub mod spool;
pub mod worker;

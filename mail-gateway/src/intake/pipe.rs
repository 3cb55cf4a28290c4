//! `mail-gateway deliver`: stores one message read on standard input, for an
//! MTA's pipe transport. Exit 0 means "stored durably, the MTA may forget
//! it"; 75 (EX_TEMPFAIL) means "keep it and try again later".

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use shared_proto::Clock;

use crate::cli::DeliverArgs;
use crate::queue::spool::{read_bounded, Spool};
use crate::vocabulary::{Envelope, Intake};

/// Runs `deliver` and returns the exit code for the MTA.
pub fn run(args: &DeliverArgs, clock: &Clock, input: &mut impl Read) -> ExitCode {
    match store(args, clock, input) {
        Ok(name) => {
            log::info!("deliver message={name} stored");
            ExitCode::SUCCESS
        }
        Err(err) => {
            log::error!("deliver: the message was not stored, the MTA will retry: {err:#}");
            eprintln!("mail-gateway deliver: temporary failure: {err:#}");
            ExitCode::from(shared_proto::exit::TEMPORARY)
        }
    }
}

fn store(args: &DeliverArgs, clock: &Clock, input: &mut impl Read) -> anyhow::Result<String> {
    let (raw, size, truncated) =
        read_bounded(input, args.spool.max_message_size).context("reading the message on stdin")?;
    let spool = Spool::open(&args.spool.data_dir)?;
    let envelope = Envelope {
        // Postfix passes `<>` or an empty string for a bounce.
        return_path: args.sender.as_ref().map(|s| {
            s.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        }),
        recipients: args.recipient.clone(),
        received_at: clock.now(),
        intake: Intake::Deliver,
        size,
        truncated,
    };
    spool.accept_blocking(&envelope, &raw)
}

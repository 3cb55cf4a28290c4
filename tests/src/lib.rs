#![doc = include_str!("../README.md")]

pub mod bench;
pub mod mail;
pub mod process;
pub mod programs;
pub mod proxy;

pub use process::{binary, wait_until};
pub use programs::{Admin, LocalServer, MailGateway, MainOptions, MainServer, Refusal};

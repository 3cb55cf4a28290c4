#![doc = include_str!("../README.md")]

pub mod browser;
pub mod certs;
pub mod devtools;
pub mod mail;
pub mod net;
pub mod process;
pub mod programs;
pub mod proxy;
pub mod sync_data;
pub mod tls;

pub use process::{binary, tool_present, wait_until, wait_until_async, Child, Output};
pub use programs::{Admin, LocalServer, MailGateway, MainOptions, MainServer, Refusal};

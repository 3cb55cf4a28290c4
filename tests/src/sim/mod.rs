//! The simulation (`solme-sim`): a world of Solme's programs that stays up and is driven
//! through a control API.
//!
//! - [`run`]: the one-command run: sets the world up, runs its journeys, keeps it up.
//! - [`world`]: what a running simulation is made of.
//! - [`clock`]: its one simulated clock (a clock file every program follows).
//! - [`events`]: the event log (`DIR/events.jsonl`, `GET /v1/events`).
//! - [`faults`]: faults on demand (programs killed, stopped, restarted; a database
//!   locked; the main server's ports and the customer's proxy failing), and the
//!   processes they act on; [`fault_net`]: the relays in front of the main server's
//!   sync ports and the customer's proxy that the network faults act on;
//!   [`fault_client`]: the front before a local server's client API that forces a
//!   feature's answers; [`fault_mail`]: the customers' mail to licensing@ through the
//!   mail faults; [`fault_customer_mail`]: Solme's mail to the customer lost or late.
//! - [`control_api`]: the HTTP/JSON control API, described by [`openapi`];
//!   [`control_cli`]: the CLI over it;
//!   [`exec`]: running a program's verb for it; [`world_actions`]: a licensed program
//!   and a customer's mail, as the control API offers them.
//! - [`scenario`]: journeys written as TOML files, and `solme-sim run` over them.

pub mod clock;
pub mod control_api;
pub mod control_cli;
pub mod events;
pub mod exec;
pub mod fault_client;
pub mod fault_customer_mail;
pub mod fault_mail;
pub mod fault_net;
pub mod faults;
pub mod openapi;
pub mod run;
pub mod scenario;
pub mod world;
pub mod world_actions;
pub mod world_grow;
pub mod world_setup;

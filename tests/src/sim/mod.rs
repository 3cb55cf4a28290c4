//! The simulation (`solme-sim`): a world of Solme's programs that stays up and is driven
//! through a control API.
//!
//! - [`run`]: the one-command run: sets the world up, runs its journeys, keeps it up.
//! - [`world`]: what a running simulation is made of.
//! - [`clock`]: its one simulated clock (a clock file every program follows).
//! - [`control_api`]: the HTTP/JSON control API; [`control_cli`]: the CLI over it;
//!   [`exec`]: running a program's verb for it.

pub mod clock;
pub mod control_api;
pub mod control_cli;
pub mod exec;
pub mod run;
pub mod world;

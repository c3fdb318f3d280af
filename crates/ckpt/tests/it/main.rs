//! Integration tests of the ckpt library.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

mod cast;
mod damage;
mod diff;
mod fixtures;
mod folders;
mod frameworks;
mod fuzz_regressions;
mod hostile_pickles;
mod inspect;
mod limits;
mod npy;
mod round_trips;
mod safetensors_reference;
mod safetensors_robustness;
mod scan;
mod stats;
mod torch_write;
mod verify;

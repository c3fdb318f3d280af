//! Integration tests of ckpt-pickle: a differential corpus against CPython 3.11
//! (`tests/fixtures/pickle/`, made by its `generate.py`), the globals CPython's unpickler
//! asks for against those the crate reports, and robustness properties.
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

mod corpus;
mod differential;
mod globals;
mod known_bugs;
mod render;
mod robustness;

//! `torch.distributed.checkpoint` folders: a `.metadata` pickle that describes every entry
//! of the state dict, and `.distcp` files that hold the entries' bytes.
//!
//! Each tensor is stored as chunks (one per rank that held a distinct piece of it), each a
//! `torch.save` archive of that piece at an offset and length in a `.distcp` file; a plain
//! value is a `torch.save` archive too. The chunks of a tensor become the tiles of one tiled
//! [`TensorView`](crate::TensorView) (checked to cover it exactly), whose bytes are read from
//! the maps chunk by chunk when it is written: a conversion never holds a whole tensor in
//! memory.
//!
//! Parse, then validate, then interpret: [`parse`] reads the `.metadata` pickle by allowlist
//! into [`Metadata`] (plain data; [`ranks`] merges every rank's of a save without
//! collectives); [`chunks`] finds each item's bytes in the opened files and checks them;
//! [`state_dict`] assembles the checkpoint, and [`audit`] checks every item as it would,
//! going on after errors. [`hf_storage`] reads the other layout DCP writes, one safetensors
//! file per rank.
//!
//! The files themselves are opened, mapped and handed over by the edge
//! ([`Source`](crate::Source)).

mod audit;
mod chunks;
pub(crate) mod hf_storage;
mod metadata;
mod parse;
mod ranks;
mod state_dict;

pub(crate) use audit::Audit;
pub(crate) use metadata::Metadata;
pub(crate) use state_dict::checkpoint;

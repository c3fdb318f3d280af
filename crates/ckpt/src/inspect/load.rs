//! How Python loads a checkpoint (see [`super::Inspection::load`]).

use crate::format::Format;
use crate::model::{Checkpoint, Kind};

/// A line of Python that loads the file, given what it is.
pub(super) fn load_line(checkpoint: &Checkpoint<'_>, path: &str) -> String {
    let path = format!("{path:?}");
    let details = checkpoint.details();
    match (checkpoint.format(), checkpoint.kind(), details.weights_only) {
        (Format::DistributedCheckpoint, ..) if details.records.contains_key("ranks") => format!(
            "saved without collectives: torch loads it only rank by rank, each rank its own \
             part (dcp.load in the same world); as one file: ckpt convert {path} \
             weights.safetensors"
        ),
        (Format::DistributedCheckpoint, ..) if details.records.contains_key("writer") => format!(
            "torch.distributed.checkpoint.load with HuggingFaceStorageReader({path}) into \
             tensors of the right shapes; as one file: ckpt convert {path} weights.safetensors"
        ),
        (Format::DistributedCheckpoint, ..) => format!(
            "torch.distributed.checkpoint.format_utils.dcp_to_torch_save({path}, \"out.pt\"), \
             or: ckpt convert {path} weights.safetensors"
        ),
        _ if details.records.contains_key("index") => format!(
            "a sharded checkpoint: transformers' from_pretrained on its folder, or \
             ckpt convert {path} weights.safetensors for one file"
        ),
        (Format::Safetensors, ..) if checkpoint.metadata().contains_key("DCP_SHARDING_INFO") => {
            "one rank's file of a DCP HuggingFaceStorageWriter save: its tensors may be parts \
             (DCP_SHARDING_INFO says where each starts); read them whole from the folder: \
             ckpt convert FOLDER weights.safetensors"
                .to_owned()
        }
        (Format::Safetensors, ..) => format!("safetensors.torch.load_file({path})"),
        (Format::TorchScript, ..) => format!(
            "torch.jit.load({path}) runs the archive's TorchScript code; for the weights alone: \
             ckpt convert {path} weights.safetensors"
        ),
        (_, Kind::StateDict, Some(true)) => {
            format!("model.load_state_dict(torch.load({path}, weights_only=True))")
        }
        (_, Kind::Checkpoint, Some(true)) => {
            let keys = checkpoint.top_level_keys();
            match keys.iter().find(|k| {
                matches!(
                    k.as_str(),
                    "model" | "state_dict" | "model_state_dict" | "model_state"
                )
            }) {
                Some(key) => {
                    format!("model.load_state_dict(torch.load({path}, weights_only=True)[{key:?}])")
                }
                None => format!("torch.load({path}, weights_only=True)"),
            }
        }
        (_, _, Some(true)) => format!("torch.load({path}, weights_only=True)"),
        _ => format!(
            "torch.load refuses this file with weights_only=True (it needs {}); convert it \
             first: ckpt convert {path} weights.safetensors, then safetensors.torch.load_file",
            if details.needs.is_empty() {
                "opcodes the weights-only unpickler lacks".to_owned()
            } else {
                details.needs.join(", ")
            }
        ),
    }
}

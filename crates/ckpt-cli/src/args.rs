//! The command line, as clap types. No behaviour lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::term::ColorChoice;

const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    something was found (differences, findings, problems, flagged tensors) by commands
       that look for it; over several files, this wins over unreadable ones
  2    error: unreadable input, invalid arguments, refused output...
  130  interrupted (Ctrl-C); no partial output is left behind";

/// Read, convert and inspect ML checkpoints (PyTorch, safetensors) without Python and
/// without running anything they contain.
#[derive(Debug, Parser)]
#[command(name = "ckpt", version, after_help = EXIT_CODES, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// Raise (or lower) one of the limits that protect ckpt from hostile files, such as
    /// `--limit depth=1000` or `--limit inflated-len=2GiB` (repeatable; `ckpt limits`
    /// lists them with their defaults). Only for files you trust.
    #[arg(long = "limit", value_name = "NAME=VALUE", global = true)]
    pub(crate) limits: Vec<String>,
    /// Colour verdicts, errors and warnings: `auto` on a terminal unless NO_COLOR is set,
    /// `always`, or `never`.
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub(crate) color: ColorChoice,
    /// Print only the report and errors: no progress bars, notes or warnings.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
    /// Print long lists in full where the text output shortens them.
    #[arg(short, long, global = true)]
    pub(crate) verbose: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List a checkpoint's tensors (name, dtype, shape, size), totals and metadata.
    ///
    /// Only the header is read, so this is instant whatever the file's size (with --hash,
    /// every tensor is read and hashed).
    #[command(after_help = "Examples:\n  ckpt inspect model.safetensors\n  \
                            ckpt inspect --json --hash model.safetensors > manifest.json")]
    Inspect(InspectArgs),
    /// Convert a checkpoint into a new file.
    ///
    /// The output's format comes from --to or from its extension (.safetensors; .pt,
    /// .pth, .bin for PyTorch). A safetensors file gets every tensor as an independent
    /// contiguous tensor under its full name. A PyTorch file keeps the source's whole
    /// structure (plain values, tied weights sharing one storage) and loads with
    /// torch.load(weights_only=True); with key surgery or shards it is a flat state dict.
    /// Plain values that the output cannot hold are listed. The output is written to a temporary file in the same folder and renamed when
    /// complete: a failed or interrupted run leaves nothing.
    #[command(
        after_help = "Filters look at the names `ckpt inspect` shows; prefixes are stripped, \
                      then renames applied.\n\nExamples:\n  \
                      ckpt convert pytorch_model.bin model.safetensors\n  \
                      ckpt convert --key state_dict --strip-prefix module. ckpt.pth weights.safetensors\n  \
                      ckpt convert --exclude '*.attn.bias' --rename '^transformer\\.=' in.bin out.safetensors\n  \
                      ckpt convert --max-shard-size 2GB pytorch_model.bin sharded/\n  \
                      ckpt convert old_legacy.pth modern.pth\n  \
                      ckpt convert --to pth --max-shard-size 2GB model.safetensors sharded/\n  \
                      ckpt convert --dtype bfloat16 pytorch_model.bin model.safetensors\n  \
                      ckpt convert --force in.safetensors out.safetensors"
    )]
    Convert(ConvertArgs),
    /// Tell whether loading files with Python would run code, without running anything.
    ///
    /// Every pickle a file holds is read (zip members whatever their name, compressed
    /// ones, pickles stacked after another, data after an archive, numpy object arrays,
    /// DCP metadata...) and each global it names is judged: `safe` (only data: torch's
    /// weights-only allowlist, numpy arrays, DCP metadata, and --allow), `unsafe` (needs
    /// code ckpt cannot vouch for, such as custom classes or TorchScript; `ckpt convert`
    /// still extracts the tensors safely) or `dangerous` (reaches code execution,
    /// processes, files, the network or more deserialization). Folders are scanned
    /// recursively. Nothing is executed, imported or written.
    #[command(
        after_help = "Exit codes: 0 every file is safe; 1 a file is unsafe or dangerous \
                            (see --fail-on); 2 a file could not be scanned and nothing worse was \
                            found.\n\nExamples:\n  \
                            ckpt scan pytorch_model.bin\n  \
                            ckpt scan --fail-on dangerous ~/.cache/huggingface/hub\n  \
                            ckpt scan --allow mypkg.config.TrainConfig checkpoints/\n  \
                            ckpt scan --sarif models/ > scan.sarif"
    )]
    Scan(ScanArgs),
    /// Check checkpoints strictly and list every problem, not just the first.
    ///
    /// Each file (or sharded or DCP folder) is checked against the rules of its format
    /// (other folders are walked for the checkpoints they hold, as scan walks them):
    /// the safetensors spec; a torch zip's container (local headers, data descriptors,
    /// CRC-32 of every member, bounds) and records (`version`, `byteorder`, every storage
    /// the pickle names, its size, every tensor view inside its storage); a legacy stream's
    /// storages and trailing bytes; a shard index against its shards (missing files and
    /// tensors, metadata.total_size). Every problem gets a rule id (see docs/verify.md), a
    /// severity, where it is and what to do. --hash also writes a manifest of every
    /// tensor's name, dtype, shape and SHA-256, which --manifest checks later, whatever
    /// format the tensors are in by then. Nothing is modified.
    #[command(
        after_help = "Exit codes: 0 every file is sound (and matches the manifest); 1 problems \
                      were found; 2 a file could not be read at all and no problem was found \
                      in another (or the manifest could not be read or written).\n\nExamples:\n  \
                      ckpt verify model.safetensors\n  \
                      ckpt verify --json pytorch_model.bin checkpoints/sharded/\n  \
                      ckpt verify --hash manifest.json pytorch_model.bin\n  \
                      ckpt convert pytorch_model.bin model.safetensors\n  \
                      ckpt verify --manifest manifest.json model.safetensors"
    )]
    Verify(VerifyArgs),
    /// Compare two checkpoints: names, dtypes, shapes and every element.
    ///
    /// A and B may be any checkpoints ckpt reads, of any formats (files, shard folders,
    /// index files, DCP folders): the same weights in a .pth, a legacy file, a safetensors
    /// file or a shard folder compare equal. Tensors are matched by name (see the options
    /// for names that differ). By default elements are equal when their bits are, NaN
    /// equal to NaN at the same place (so +0.0 and -0.0 differ); with --atol/--rtol, when
    /// torch.allclose(a, b, rtol, atol, equal_nan=True) would say so, B being the
    /// reference. For every differing tensor the report counts the differing elements and
    /// gives the largest absolute and relative difference, with where they are. Plain values
    /// (epoch, configs) are compared too when neither side is a safetensors file.
    #[command(after_help = "Exit codes: 0 equal; 1 different; 2 error.\n\n\
                            Prefixes are stripped (both sides', then one side's), then renames \
                            applied; --include/--exclude look at the names that result.\n\n\
                            Examples:\n  \
                            ckpt diff pytorch_model.bin model.safetensors\n  \
                            ckpt diff --atol 1e-3 --rtol 1e-3 --ignore-dtype model.fp32.safetensors model.bf16.safetensors\n  \
                            ckpt diff --strip-prefix-a module. ddp_checkpoint.pth sharded_folder/\n  \
                            ckpt diff --rename-b '^transformer\\.=' --exclude '*.attn.bias' a.pth b.safetensors\n  \
                            ckpt diff --json old.pth new.pth > diff.json")]
    Diff(DiffArgs),
    /// Per tensor: min, max, mean, std, and counts of NaN, infinities and zeros.
    ///
    /// Every element is read as a float64 (floats of every width, integers, bool as 0/1,
    /// complex numbers by magnitude, quantized tensors by their real values), straight from
    /// the file on all cores. MIN, MAX, MEAN and STD are over the finite values (NaN and
    /// infinities are counted instead); STD is the unbiased one, as torch's `std()`.
    /// Tensors with NaN or infinite values, or floating tensors whose values are all zero,
    /// are flagged (--flag-zero chooses which all-zero tensors are); constant tensors are
    /// noted. Dtypes without numbers (bits8...) are listed without statistics.
    #[command(
        after_help = "Exit codes: 0 no tensor is flagged; 1 a tensor has NaN or infinite \
                            values, or is a floating tensor of zeros (see --flag-zero); 2 a file \
                            could not be read and no tensor was flagged.\n\nExamples:\n  \
                            ckpt stats model.safetensors\n  \
                            ckpt stats --histogram --include '*.attn.*' pytorch_model.bin\n  \
                            ckpt stats --json --bins 64 checkpoint.pt > stats.json\n  \
                            ckpt stats sharded-folder/ || echo 'NaN, inf or zeroed weights'"
    )]
    Stats(StatsArgs),
    /// List the limits that protect ckpt from hostile files, with their values.
    ///
    /// A file over a limit is refused with an error that names the limit. Raise one for a
    /// file you trust with `--limit NAME=VALUE` on any command.
    #[command(after_help = "Examples:\n  ckpt limits\n  ckpt limits --json\n  \
                            ckpt --limit depth=1000 inspect deep.pt")]
    Limits(LimitsArgs),
    /// Print a shell completion script for ckpt.
    ///
    /// Load it in the shell's startup file, or save it where the shell finds completions.
    #[command(after_help = "Examples:\n  \
                            ckpt completions bash > ~/.local/share/bash-completion/completions/ckpt\n  \
                            ckpt completions zsh > ~/.zfunc/_ckpt\n  \
                            ckpt completions fish > ~/.config/fish/completions/ckpt.fish")]
    Completions(CompletionsArgs),
    /// Print a manual page (roff) for man(1): ckpt's, or a command's (`ckpt-inspect`...).
    #[command(after_help = "Examples:\n  ckpt man | man -l -\n  \
                            ckpt man inspect | man -l -\n  \
                            for c in '' inspect convert scan verify stats diff limits; do \
                            ckpt man $c > ~/.local/share/man/man1/ckpt${c:+-$c}.1; done")]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// The command whose page to print (`inspect`, `convert`...); ckpt's own without one.
    #[arg(value_name = "COMMAND")]
    pub(crate) command: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Checkpoint files, or folders (one checkpoint, or walked for those they hold; `-`:
    /// standard input).
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// Print one JSON object (files, problems, summary) instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// Also hash every tensor and write a manifest (name, dtype, shape, sha256) to this
    /// file, for --manifest to check later. Takes one FILE; written only if it is sound.
    #[arg(long, value_name = "MANIFEST", conflicts_with = "manifest")]
    pub(crate) hash: Option<PathBuf>,
    /// Also check every tensor against this manifest (from --hash, or the output of
    /// `ckpt inspect --json --hash`): missing and extra tensors, dtype, shape and hash
    /// mismatches are problems.
    #[arg(long, value_name = "MANIFEST")]
    pub(crate) manifest: Option<PathBuf>,
    /// With --manifest: check the tensors under this dotted key of the manifest's
    /// checkpoint, named from there (as `convert --key` wrote them).
    #[arg(
        long,
        value_name = "KEY",
        requires = "manifest",
        help_heading = "Manifest names"
    )]
    pub(crate) key: Option<String>,
    /// With --manifest: strip this prefix from the manifest's names, as `convert
    /// --strip-prefix` did. Repeatable.
    #[arg(
        long,
        value_name = "PREFIX",
        requires = "manifest",
        help_heading = "Manifest names"
    )]
    pub(crate) strip_prefix: Vec<String>,
    /// With --manifest: rename the manifest's names as `convert --rename` did
    /// (`REGEX=REPLACEMENT`). Repeatable.
    #[arg(
        long,
        value_name = "REGEX=REPLACEMENT",
        requires = "manifest",
        help_heading = "Manifest names"
    )]
    pub(crate) rename: Vec<String>,
    /// With --manifest: only the manifest's tensors whose name matches this glob (as
    /// `convert --include`). Repeatable.
    #[arg(
        long,
        value_name = "GLOB",
        requires = "manifest",
        help_heading = "Manifest names"
    )]
    pub(crate) include: Vec<String>,
    /// With --manifest: leave out the manifest's tensors whose name matches this glob (as
    /// `convert --exclude`). Repeatable.
    #[arg(
        long,
        value_name = "GLOB",
        requires = "manifest",
        help_heading = "Manifest names"
    )]
    pub(crate) exclude: Vec<String>,
    /// Replace the --hash manifest if it exists.
    #[arg(short, long, requires = "hash")]
    pub(crate) force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct LimitsArgs {
    /// Print the limits as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// Checkpoints: files, or folders of a model, of shards or of a DCP checkpoint (`-`:
    /// standard input).
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// Print one JSON object (tensors, summary) instead of a table (an array of them for
    /// several files).
    #[arg(long)]
    pub(crate) json: bool,
    /// Add a histogram of each tensor's finite values between its min and max (16 bins
    /// unless --bins), drawn as a bar of block characters; its bins and edges with --json.
    #[arg(long)]
    pub(crate) histogram: bool,
    /// Bins of each histogram, 1 to 1024 (implies --histogram).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(crate) bins: Option<u16>,
    /// Only the tensors whose name matches this glob (`encoder.*`, `*.weight`; `*` matches
    /// dots too). Repeatable: a name matching any of them is kept.
    #[arg(long, value_name = "GLOB")]
    pub(crate) include: Vec<String>,
    /// Leave out the tensors whose name matches this glob (wins over --include). Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub(crate) exclude: Vec<String>,
    /// Which all-zero tensors are flagged: `float` ones (floating, complex and quantized:
    /// a zeroed weight), `any` (integer counters such as BatchNorm's `num_batches_tracked`
    /// too), or `none`. Unflagged all-zero tensors are noted.
    #[arg(long, value_name = "WHICH", value_enum, default_value_t = FlagZero::Float)]
    pub(crate) flag_zero: FlagZero,
}

/// Which all-zero tensors `stats` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FlagZero {
    /// Floating, complex and quantized tensors.
    Float,
    /// Every tensor, integer and bool ones too.
    Any,
    /// None.
    None,
}

#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// The first checkpoint (A; `-`: standard input).
    pub(crate) a: PathBuf,
    /// The second checkpoint (B): the reference for --rtol, as `other` in torch.allclose.
    pub(crate) b: PathBuf,
    /// Compare within this absolute tolerance, as torch.allclose: |a - b| <= atol + rtol *
    /// |b|. Given alone, rtol keeps torch's default 1e-5 (pass --rtol 0 for none).
    #[arg(
        long,
        value_name = "X",
        help_heading = "Tolerances",
        allow_negative_numbers = true
    )]
    pub(crate) atol: Option<f64>,
    /// Compare within this relative tolerance (see --atol). Given alone, atol keeps torch's
    /// default 1e-8.
    #[arg(
        long,
        value_name = "X",
        help_heading = "Tolerances",
        allow_negative_numbers = true
    )]
    pub(crate) rtol: Option<f64>,
    /// Count tensors whose dtypes differ as equal when their values are (compared as
    /// numbers, under the tolerances): for a float32 checkpoint against its bfloat16 cast,
    /// with tolerances.
    #[arg(long, help_heading = "Tolerances")]
    pub(crate) ignore_dtype: bool,
    /// Compare only the tensors and values whose name (after prefixes and renames) matches
    /// this glob (`*` matches dots too). Repeatable.
    #[arg(long, value_name = "GLOB", help_heading = "Matching names")]
    pub(crate) include: Vec<String>,
    /// Leave out the tensors whose name matches this glob (wins over --include). Repeatable.
    #[arg(long, value_name = "GLOB", help_heading = "Matching names")]
    pub(crate) exclude: Vec<String>,
    /// Remove this prefix from the names of both sides (`module.`). Repeatable.
    #[arg(long, value_name = "PREFIX", help_heading = "Matching names")]
    pub(crate) strip_prefix: Vec<String>,
    /// Remove this prefix from A's names only. Repeatable.
    #[arg(long, value_name = "PREFIX", help_heading = "Matching names")]
    pub(crate) strip_prefix_a: Vec<String>,
    /// Remove this prefix from B's names only. Repeatable.
    #[arg(long, value_name = "PREFIX", help_heading = "Matching names")]
    pub(crate) strip_prefix_b: Vec<String>,
    /// Rename the tensors of both sides: every match of REGEX is replaced, as Python's
    /// re.sub does; a group is `$1` or `${1}` (not `\1`). Repeatable, applied in order
    /// after prefixes.
    #[arg(
        long,
        value_name = "REGEX=REPLACEMENT",
        help_heading = "Matching names"
    )]
    pub(crate) rename: Vec<String>,
    /// Rename A's tensors only (after --rename). Repeatable.
    #[arg(
        long,
        value_name = "REGEX=REPLACEMENT",
        help_heading = "Matching names"
    )]
    pub(crate) rename_a: Vec<String>,
    /// Rename B's tensors only (after --rename). Repeatable.
    #[arg(
        long,
        value_name = "REGEX=REPLACEMENT",
        help_heading = "Matching names"
    )]
    pub(crate) rename_b: Vec<String>,
    /// Compare the subtree at this dotted key of both checkpoints (`model`, `state_dict`)
    /// instead of the whole trees, as `convert --key` takes one.
    #[arg(long, value_name = "KEY", help_heading = "Matching names")]
    pub(crate) key: Option<String>,
    /// Take the subtree at this key of A only (overrides --key for A).
    #[arg(long, value_name = "KEY", help_heading = "Matching names")]
    pub(crate) key_a: Option<String>,
    /// Take the subtree at this key of B only (overrides --key for B): a training
    /// checkpoint's `--key-a state_dict` against the model file it was converted to.
    #[arg(long, value_name = "KEY", help_heading = "Matching names")]
    pub(crate) key_b: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ScanArgs {
    /// Files and folders to scan (folders recursively; `-`: standard input).
    #[arg(required = true, value_name = "PATH")]
    pub(crate) paths: Vec<PathBuf>,
    /// Print one JSON object (files, findings, summary) instead of text.
    #[arg(long, conflicts_with = "sarif")]
    pub(crate) json: bool,
    /// Print a SARIF 2.1.0 log for code-scanning tools (one result per finding).
    #[arg(long)]
    pub(crate) sarif: bool,
    /// Accept this global as data (`module.name`, or a whole `module`). Repeatable. It
    /// turns unsafe into safe; it never hides a dangerous global.
    #[arg(long, value_name = "MODULE.NAME")]
    pub(crate) allow: Vec<String>,
    /// The verdict that makes the exit code 1.
    #[arg(long, value_enum, default_value = "unsafe", value_name = "VERDICT")]
    pub(crate) fail_on: FailOn,
}

/// Which verdict fails `ckpt scan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FailOn {
    /// Unsafe or dangerous files fail.
    Unsafe,
    /// Only dangerous files fail.
    Dangerous,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// Checkpoint files, or folders of a model, of shards or of a DCP checkpoint (`-`:
    /// standard input, read to its end).
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// Print one JSON object instead of tables (an array of them for several files).
    #[arg(long)]
    pub(crate) json: bool,
    /// Add the SHA-256 of each tensor's elements (row-major, little-endian, packed): the
    /// same value whatever file holds the tensor, to prove a conversion lossless.
    #[arg(long)]
    pub(crate) hash: bool,
    /// Print the file's pickles opcode by opcode (like `python -m pickletools`) instead,
    /// with byte offsets in the file. Nothing is run.
    #[arg(long, conflicts_with_all = ["json", "hash"])]
    pub(crate) pickle: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ConvertArgs {
    /// The checkpoint to read (`-`: standard input, read to its end).
    pub(crate) input: PathBuf,
    /// The file to write (a folder with --max-shard-size; `-`: standard output, with --to).
    pub(crate) output: PathBuf,
    /// The output format (default: from the output's extension).
    #[arg(long, value_enum)]
    pub(crate) to: Option<TargetArg>,
    /// Replace the output if it exists (never the input itself).
    #[arg(short, long)]
    pub(crate) force: bool,
    /// Do not wait for the output to reach the disk (no fsync) before renaming it into
    /// place. The output still appears whole or not at all, and the run takes about the
    /// time of `cp`; but a power loss or crash soon after may leave it empty or partial.
    /// For scratch outputs.
    #[arg(long)]
    pub(crate) no_sync: bool,
    /// Convert only this subtree of a training checkpoint (a dotted path of keys:
    /// `model`, `state_dict`, `module.encoder`).
    #[arg(long, value_name = "PATH")]
    pub(crate) key: Option<String>,
    /// Write tied tensors (the same view of one storage under several names) once, and
    /// record the dropped names in the metadata, as HF's converter does. (PyTorch outputs
    /// keep tied tensors on one shared storage instead.)
    #[arg(long)]
    pub(crate) dedupe: bool,
    /// Write only the tensors whose name matches this glob (`encoder.*`, `*.weight`;
    /// `*` matches dots too). Repeatable: a name matching any of them is kept.
    #[arg(
        long,
        value_name = "GLOB",
        help_heading = "Choosing and renaming tensors"
    )]
    pub(crate) include: Vec<String>,
    /// Leave out the tensors whose name matches this glob (wins over --include). Repeatable.
    #[arg(
        long,
        value_name = "GLOB",
        help_heading = "Choosing and renaming tensors"
    )]
    pub(crate) exclude: Vec<String>,
    /// Remove this prefix from the names that start with it (e.g. `module.`, added by
    /// DataParallel). Repeatable; applied before --rename.
    #[arg(
        long,
        value_name = "PREFIX",
        help_heading = "Choosing and renaming tensors"
    )]
    pub(crate) strip_prefix: Vec<String>,
    /// Rename tensors: every match of REGEX in a name is replaced, as Python's re.sub does;
    /// a group is `$1` or `${name}` (not `\1`; `${1}` when a letter, digit or `_` follows).
    /// Repeatable, applied in order.
    #[arg(
        long,
        value_name = "REGEX=REPLACEMENT",
        help_heading = "Choosing and renaming tensors"
    )]
    pub(crate) rename: Vec<String>,
    /// Write a folder of Hugging Face shards of at most SIZE of tensor data each (`5GB`,
    /// `500MB`, `4KB`: decimal units as HF reads them; `2GiB` binary), named
    /// `model-00001-of-00003.safetensors` (or `pytorch_model-...bin` with --to pth, tensors
    /// that share a storage in one shard) with an index. The
    /// output is then a folder; an existing folder as output shards at 5GB.
    #[arg(long, value_name = "SIZE")]
    pub(crate) max_shard_size: Option<String>,
    /// Cast floating point tensors (float64, float32, float16, bfloat16, float8) to this
    /// dtype, exactly as torch's `tensor.to(dtype)` does: round to nearest even, overflow
    /// to inf (float8_e4m3fn, which has none, saturates to ±448). Other tensors (integers,
    /// bool, complex) keep their dtype. The summary counts the values that overflowed,
    /// were NaN or were flushed to zero, per tensor. In a PyTorch output each cast tensor
    /// gets a storage of its own; tied weights stay tied.
    #[arg(long, value_enum, value_name = "DTYPE")]
    pub(crate) dtype: Option<DtypeArg>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// A dtype `--dtype` casts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DtypeArg {
    /// 8 exponent bits, 7 mantissa bits.
    #[value(name = "bfloat16", alias = "bf16")]
    BFloat16,
    /// IEEE half precision.
    #[value(name = "float16", alias = "fp16", alias = "half")]
    Float16,
    /// IEEE single precision.
    #[value(name = "float32", alias = "fp32", alias = "float")]
    Float32,
    /// IEEE double precision.
    #[value(name = "float64", alias = "fp64", alias = "double")]
    Float64,
    /// float8 with 4 exponent bits, 3 mantissa bits, no infinity (max ±448).
    #[value(name = "float8_e4m3fn")]
    Float8E4M3Fn,
    /// float8 with 5 exponent bits, 2 mantissa bits (max ±57344, then inf).
    #[value(name = "float8_e5m2")]
    Float8E5M2,
}

/// An output format on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TargetArg {
    /// A safetensors file.
    Safetensors,
    /// A PyTorch file (torch.save zip).
    #[value(alias = "pt", alias = "torch", alias = "bin")]
    Pth,
}

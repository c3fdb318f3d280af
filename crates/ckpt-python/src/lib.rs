//! `ckpt._ckpt`: the native half of the `ckpt` Python package.
//!
//! It opens a checkpoint with the `ckpt` library and answers, per tensor, either where its
//! bytes lie in a file (so that Python maps them copy-on-write, without a copy) or the
//! bytes themselves (for what must be produced: casts, byte swaps, strided or tiled
//! tensors). Nothing here imports torch or numpy; `python/ckpt/__init__.py` builds their
//! tensors. The GIL is released while bytes are read.

mod commands;
mod errors;
mod handle;
mod memory;
mod save;
mod tree;

use pyo3::prelude::*;

/// The native module.
#[pymodule]
fn _ckpt(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<handle::Handle>()?;
    m.add_function(wrap_pyfunction!(handle::limit_names, m)?)?;
    m.add_function(wrap_pyfunction!(commands::convert, m)?)?;
    m.add_function(wrap_pyfunction!(commands::inspect, m)?)?;
    m.add_function(wrap_pyfunction!(commands::scan, m)?)?;
    m.add_function(wrap_pyfunction!(commands::diff, m)?)?;
    m.add_function(wrap_pyfunction!(commands::verify, m)?)?;
    m.add_function(wrap_pyfunction!(commands::stats, m)?)?;
    m.add_function(wrap_pyfunction!(save::save, m)?)?;
    errors::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

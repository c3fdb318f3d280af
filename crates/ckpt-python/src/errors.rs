//! The library's errors as Python exceptions: `ckpt.Error` and one subclass per kind, each
//! carrying the kind, the place (path, member, tensor, byte offset) and the hint.

use ckpt::ErrorKind;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    ckpt,
    Error,
    PyException,
    "Any error of ckpt: `kind`, `path`, `member`, `tensor`, `offset`, `hint`."
);
create_exception!(
    ckpt,
    MalformedError,
    Error,
    "The file breaks its format's rules."
);
create_exception!(
    ckpt,
    NotACheckpointError,
    Error,
    "The file is not a checkpoint ckpt recognises."
);
create_exception!(
    ckpt,
    UnsupportedError,
    Error,
    "A format or feature ckpt recognises but does not read."
);
create_exception!(
    ckpt,
    LimitExceededError,
    Error,
    "The file goes past a limit (see `limits=`)."
);
create_exception!(
    ckpt,
    RefusedError,
    Error,
    "The file needs something ckpt does not read as data."
);
create_exception!(
    ckpt,
    DangerousError,
    Error,
    "Loading the file with its usual loader would run code: ckpt reads none of it."
);
create_exception!(
    ckpt,
    InvalidError,
    Error,
    "An argument is wrong (a name, a key, a limit)."
);
create_exception!(
    ckpt,
    FileError,
    Error,
    "A file could not be opened, read or written."
);
create_exception!(
    ckpt,
    OutputExistsError,
    Error,
    "The output exists and would be overwritten."
);
create_exception!(ckpt, CancelledError, Error, "The work was interrupted.");

/// Adds the exception classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("MalformedError", py.get_type::<MalformedError>())?;
    m.add("NotACheckpointError", py.get_type::<NotACheckpointError>())?;
    m.add("UnsupportedError", py.get_type::<UnsupportedError>())?;
    m.add("LimitExceededError", py.get_type::<LimitExceededError>())?;
    m.add("RefusedError", py.get_type::<RefusedError>())?;
    m.add("DangerousError", py.get_type::<DangerousError>())?;
    m.add("InvalidError", py.get_type::<InvalidError>())?;
    m.add("FileError", py.get_type::<FileError>())?;
    m.add("OutputExistsError", py.get_type::<OutputExistsError>())?;
    m.add("CancelledError", py.get_type::<CancelledError>())?;
    Ok(())
}

/// The Python exception for `error`, with its attributes set.
pub(crate) fn to_py(py: Python<'_>, error: &ckpt::Error) -> PyErr {
    let text = error.to_string();
    let err = match error.kind() {
        ErrorKind::Malformed => MalformedError::new_err(text),
        ErrorKind::NotACheckpoint => NotACheckpointError::new_err(text),
        ErrorKind::Unsupported => UnsupportedError::new_err(text),
        ErrorKind::LimitExceeded => LimitExceededError::new_err(text),
        ErrorKind::Refused => RefusedError::new_err(text),
        ErrorKind::Dangerous => DangerousError::new_err(text),
        ErrorKind::Invalid => InvalidError::new_err(text),
        ErrorKind::Io => FileError::new_err(text),
        ErrorKind::OutputExists => OutputExistsError::new_err(text),
        ErrorKind::Interrupted => CancelledError::new_err(text),
        _ => Error::new_err(text),
    };
    let value = err.value(py);
    let location = error.location();
    let attributes = [
        ("kind", Some(error.kind().as_str().to_owned())),
        ("message", Some(error.message().to_owned())),
        ("hint", error.hint().map(str::to_owned)),
        (
            "path",
            location.path.as_ref().map(|p| p.display().to_string()),
        ),
        ("member", location.member.clone()),
        ("tensor", location.tensor.clone()),
    ];
    for (name, text) in attributes {
        // Setting an attribute of a fresh exception cannot fail but for lack of memory,
        // and then the exception itself is still worth raising.
        let _ = value.setattr(name, text);
    }
    let _ = value.setattr("offset", location.offset);
    err
}

/// Converts a library result.
pub(crate) fn check<T>(py: Python<'_>, result: ckpt::Result<T>) -> PyResult<T> {
    result.map_err(|e| to_py(py, &e))
}

//! Classifying a global (`module.name`) as data, code we cannot vouch for, or dangerous.
//!
//! The allowlist decides what is data; the denylist only decides how loudly the rest is
//! reported. A global that is neither is `unsafe`, never `safe`: being missing from the
//! denylist proves nothing.

use super::Verdict;
use crate::torch::globals;

/// Modules (and every submodule) that reach code execution, processes, files, the
/// network or more deserialization. Matched against the full dotted path of a global, so
/// `os` also catches `os.path.join` and `torch.serialization` catches
/// `torch.serialization.load`.
const DANGEROUS_MODULES: &[(&str, &str)] = &[
    // processes and the operating system
    ("os", "runs commands and touches files"),
    ("posix", "is the os module under another name"),
    ("nt", "is the os module under another name"),
    ("subprocess", "runs processes"),
    ("_posixsubprocess", "runs processes"),
    ("pty", "spawns processes"),
    (
        "sys",
        "reaches the interpreter's internals (modules, hooks)",
    ),
    ("signal", "changes process signal handling"),
    ("shutil", "copies, moves and deletes files"),
    ("tempfile", "creates files"),
    ("glob", "lists files"),
    ("io", "opens files"),
    ("_io", "opens files"),
    ("_pyio", "opens files (the pure-Python io module)"),
    ("gzip", "opens files"),
    ("bz2", "opens files"),
    ("lzma", "opens files"),
    ("mmap", "maps files and memory"),
    ("fcntl", "controls file descriptors"),
    (
        "xml",
        "parses files and URLs (and resolves external entities)",
    ),
    ("xmlrpc", "opens network connections"),
    ("mailbox", "reads and writes mail files"),
    ("netrc", "reads credential files"),
    ("configparser", "reads configuration files"),
    ("filecmp", "reads files"),
    ("plistlib", "reads and writes files"),
    ("wave", "opens files"),
    ("aifc", "opens files"),
    ("sunau", "opens files"),
    ("imghdr", "opens files"),
    ("sndhdr", "opens files"),
    ("py_compile", "compiles files and writes bytecode"),
    ("compileall", "compiles files and writes bytecode"),
    ("zipapp", "writes archives"),
    ("tabnanny", "reads files"),
    ("posixpath", "reaches the file system"),
    ("ntpath", "reaches the file system"),
    ("genericpath", "reaches the file system"),
    ("pwd", "reads the user database"),
    ("grp", "reads the group database"),
    ("resource", "changes process limits"),
    ("select", "waits on file descriptors"),
    ("selectors", "waits on file descriptors"),
    ("syslog", "writes the system log"),
    ("readline", "reads and writes history files"),
    ("curses", "drives the terminal"),
    ("termios", "drives the terminal"),
    ("tty", "drives the terminal"),
    ("sched", "runs callables"),
    (
        "copyreg.add_extension",
        "writes into the process's pickle extension registry",
    ),
    (
        "copyreg.remove_extension",
        "writes into the process's pickle extension registry",
    ),
    (
        "copyreg.pickle",
        "writes into the process's pickle dispatch table",
    ),
    (
        "copy_reg.add_extension",
        "writes into the process's pickle extension registry",
    ),
    (
        "unittest.mock",
        "resolves any name to any object (mock.patch targets)",
    ),
    ("unittest", "runs test code and resolves names"),
    ("fileinput", "reads files"),
    ("linecache", "reads files"),
    // resolvers: turn a string into any callable
    ("importlib", "imports any module by name"),
    ("_frozen_importlib", "imports any module by name"),
    ("_frozen_importlib_external", "imports any module by name"),
    ("_imp", "imports any module by name"),
    ("imp", "imports any module by name"),
    (
        "pkgutil",
        "resolves any name to any object (pkgutil.resolve_name)",
    ),
    ("zipimport", "imports code from archives"),
    // code execution sinks of the standard library
    ("runpy", "runs Python code"),
    ("code", "runs Python code"),
    ("codeop", "compiles Python code"),
    ("cProfile", "runs Python code (cProfile.run)"),
    ("profile", "runs Python code (profile.run)"),
    ("timeit", "runs Python code (timeit.timeit)"),
    ("trace", "runs Python code (trace.Trace.run)"),
    ("pdb", "runs Python code (the debugger)"),
    ("bdb", "runs Python code (the debugger)"),
    ("doctest", "runs Python code (doctest.debug_script)"),
    ("idlelib", "runs Python code (IDLE's interpreter)"),
    (
        "pydoc",
        "locates any object by name and runs pagers (pydoc.locate, pipepager)",
    ),
    ("ctypes", "calls native code"),
    ("_ctypes", "calls native code"),
    ("marshal", "loads Python bytecode"),
    ("venv", "creates environments and runs pip"),
    ("ensurepip", "runs pip"),
    ("pip", "installs and runs packages"),
    ("imaplib", "runs commands (IMAP4_stream)"),
    ("uuid._get_command_stdout", "runs commands"),
    ("_osx_support", "runs commands"),
    ("_aix_support", "runs commands"),
    ("_pyrepl", "runs Python code and pagers"),
    ("mailcap", "runs commands (mailcap.findmatch)"),
    ("pipes", "runs shell commands (pipes.Template)"),
    ("typing._eval_type", "evaluates Python expressions"),
    ("typing.ForwardRef", "evaluates Python expressions"),
    ("typing.get_type_hints", "evaluates Python expressions"),
    ("dataclasses._create_fn", "compiles Python code"),
    ("lib2to3", "compiles and runs grammar code"),
    ("multiprocessing", "spawns processes"),
    ("_multiprocessing", "spawns processes"),
    ("concurrent.futures", "runs callables in workers"),
    ("threading", "runs callables in threads"),
    ("_thread", "runs callables in threads"),
    (
        "asyncio",
        "runs processes, sockets and callbacks (asyncio.run, create_subprocess_shell)",
    ),
    (
        "setuptools",
        "runs commands and writes files (spawn, file_util)",
    ),
    (
        "distutils",
        "runs commands and writes files (spawn, file_util)",
    ),
    ("_distutils_hack", "patches the import system"),
    (
        "logging",
        "writes files, opens network connections and imports code from configuration \
         (basicConfig, FileHandler, handlers, config)",
    ),
    ("builtins.open", "opens files"),
    ("sqlite3", "opens database files"),
    ("dbm", "opens database files"),
    ("shelve", "opens files and unpickles them"),
    ("zipfile", "reads and writes archives"),
    ("tarfile", "reads and writes archives"),
    ("gc", "reaches every live object"),
    ("inspect", "reaches frames and source"),
    ("site", "runs startup code"),
    ("sysconfig", "reads the environment"),
    ("atexit", "registers code to run at exit"),
    ("weakref.finalize", "registers callbacks"),
    // network and browsers
    ("socket", "opens network connections"),
    ("_socket", "opens network connections"),
    ("socketserver", "opens network servers"),
    ("ssl", "opens network connections"),
    ("http", "opens network connections and servers"),
    ("urllib", "opens network connections"),
    ("urllib3", "opens network connections"),
    ("requests", "opens network connections"),
    ("httpx", "opens network connections"),
    ("aiohttp", "opens network connections"),
    ("webbrowser", "runs a browser"),
    ("codecs.open", "opens files"),
    ("smtplib", "sends mail"),
    ("ftplib", "opens network connections"),
    ("poplib", "opens network connections"),
    ("telnetlib", "opens network connections"),
    ("xmlrpc", "opens network connections"),
    ("nntplib", "opens network connections"),
    // more deserialization
    ("pickle", "unpickles more data (a nested loader)"),
    ("_pickle", "unpickles more data (a nested loader)"),
    ("pickletools", "works on pickles"),
    ("dill", "unpickles code (a nested loader)"),
    ("cloudpickle", "unpickles code (a nested loader)"),
    ("joblib", "unpickles more data (a nested loader)"),
    ("torch.load", "unpickles another file (a nested loader)"),
    (
        "torch.serialization",
        "unpickles another file (a nested loader)",
    ),
    ("torch.jit", "loads TorchScript programs (a nested loader)"),
    (
        "torch._C",
        "calls native torch internals (_import_ir_module, ...)",
    ),
    ("torch.hub", "downloads and runs code"),
    ("torch.utils.model_zoo", "downloads files (load_url)"),
    ("torchvision.datasets.utils", "downloads and extracts files"),
    ("torch.package", "imports code from packages"),
    ("torch.ops", "calls any registered operator"),
    ("torch._ops", "calls any registered operator"),
    (
        "torch.storage._load_from_bytes",
        "unpickles bytes with torch.load (a nested loader)",
    ),
    ("torch.save", "writes files"),
    ("torch.utils.collect_env", "runs commands"),
    (
        "torch.utils.bottleneck",
        "runs Python code under a profiler",
    ),
    (
        "torch.utils.cpp_extension",
        "compiles and loads native code",
    ),
    ("torch.utils.data.datapipes", "decodes and opens files"),
    ("torch._dynamo", "evaluates guard code"),
    (
        "torch.fx.experimental.symbolic_shapes",
        "evaluates guard expressions",
    ),
    ("torch.fx.graph_module", "compiles Python code"),
    ("torch._inductor", "compiles and runs code"),
    ("numpy.load", "unpickles another file (a nested loader)"),
    ("numpy.lib.npyio", "loads files, with pickles"),
    (
        "numpy.lib._npyio_impl",
        "loads files, with pickles (numpy 2's npyio)",
    ),
    ("numpy.lib.format", "loads files, with pickles"),
    (
        "numpy.lib._format_impl",
        "loads files, with pickles (numpy 2's format)",
    ),
    ("numpy.lib._datasource", "opens files and URLs"),
    ("numpy.DataSource", "opens files and URLs"),
    ("numpy.f2py", "compiles and runs code"),
    ("numpy.testing", "runs Python code (runstring)"),
    ("numpy.distutils", "runs commands"),
    ("numpy.ctypeslib", "loads native libraries"),
    ("numpy.fromfile", "reads files"),
    ("numpy.loadtxt", "reads files"),
    ("numpy.genfromtxt", "reads files and URLs"),
    ("numpy.fromregex", "reads files"),
    ("numpy.save", "writes files"),
    ("numpy.savez", "writes files"),
    ("numpy.savez_compressed", "writes files"),
    ("numpy.savetxt", "writes files"),
    ("numpy.memmap", "maps files"),
    ("pandas.read_pickle", "unpickles another file"),
    ("pandas.read_csv", "reads files and URLs"),
    ("pandas.io", "reads files and URLs"),
    ("mlflow", "runs projects and entry points"),
    ("keras", "loads models with code"),
    ("tensorflow", "runs graph code and file I/O"),
    ("yaml", "can construct any object (unsafe loaders)"),
    ("jinja2", "runs template code"),
    ("IPython", "runs Python code"),
];

/// `builtins` names that reach code, attributes or files. The rest of `builtins` is
/// unsafe (unknown), except the allowlisted data types.
const DANGEROUS_BUILTINS: &[(&str, &str)] = &[
    ("eval", "evaluates Python code"),
    ("exec", "runs Python code"),
    ("compile", "compiles Python code"),
    ("open", "opens files"),
    ("getattr", "reaches any attribute (a universal resolver)"),
    ("setattr", "changes any attribute"),
    ("delattr", "deletes any attribute"),
    ("__import__", "imports any module by name"),
    ("globals", "reaches the module's globals"),
    ("locals", "reaches local variables"),
    ("vars", "reaches any object's attributes"),
    ("input", "reads the terminal"),
    ("breakpoint", "starts a debugger"),
    ("help", "runs pydoc"),
    ("exit", "exits the interpreter"),
    ("quit", "exits the interpreter"),
    ("memoryview", "exposes raw memory"),
    ("type", "creates classes"),
    ("super", "reaches parent methods"),
    ("classmethod", "wraps callables"),
    ("staticmethod", "wraps callables"),
    ("property", "wraps callables"),
    ("map", "calls a function on every item"),
    ("filter", "calls a function on every item"),
    ("sorted", "calls a key function"),
    ("max", "calls a key function"),
    ("min", "calls a key function"),
    ("iter", "calls a function until a sentinel"),
    ("next", "runs iterators and generators"),
    ("apply", "calls anything (Python 2)"),
    ("execfile", "runs a file (Python 2)"),
    ("file", "opens files (Python 2)"),
    ("reload", "re-imports a module (Python 2)"),
];

/// Attribute names that, reached through a dotted name, lead to a module that is
/// dangerous (`random._os.system` is `os.system`) or to the interpreter's internals.
const DANGEROUS_ATTRIBUTES: &[&str] = &[
    "os",
    "_os",
    "sys",
    "_sys",
    "subprocess",
    "_subprocess",
    "builtins",
    "_builtins",
    "__builtins__",
    "__builtin__",
    "posix",
    "nt",
    "importlib",
    "_imp",
    "pickle",
    "_pickle",
    "shutil",
    "socket",
    "ctypes",
    "marshal",
    "runpy",
    "pty",
    "eval",
    "exec",
    "system",
    "popen",
];

/// Known globals that are code but not known to be harmful, with what they need.
const UNSAFE_KNOWN: &[(&str, &str, &str)] = &[
    (
        "argparse",
        "Namespace",
        "an argparse.Namespace (training arguments): a plain attribute bag, but a class \
         torch's weights-only loader refuses",
    ),
    (
        "collections",
        "defaultdict",
        "a defaultdict, whose factory is called when a missing key is read",
    ),
    (
        "copyreg",
        "_reconstructor",
        "copyreg._reconstructor, which instantiates any class",
    ),
];

/// How a global is judged, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Judgement {
    pub(crate) verdict: Verdict,
    pub(crate) why: String,
}

impl Judgement {
    fn new(verdict: Verdict, why: impl Into<String>) -> Self {
        Judgement {
            verdict,
            why: why.into(),
        }
    }
}

/// The functions of `operator` (and its C half `_operator`) that reach beyond the values
/// given to them: universal resolvers and callers, and writes into whatever object the
/// pickle can name (a registry, a module's dict). The rest (`getitem`, `add`, `eq`...) only
/// compute on their arguments, which are judged on their own: `typing.Dict[str, int]`
/// pickles as `_operator.getitem(typing.Dict, (str, int))`.
const DANGEROUS_OPERATORS: &[(&str, &str)] = &[
    ("attrgetter", "reaches any attribute (a universal resolver)"),
    ("methodcaller", "calls any method (a universal resolver)"),
    ("call", "calls anything"),
    ("setitem", "writes into any object the pickle can name"),
    ("delitem", "deletes from any object the pickle can name"),
    ("iadd", "updates any object the pickle can name in place"),
    ("iand", "updates any object the pickle can name in place"),
    ("iconcat", "updates any object the pickle can name in place"),
    (
        "ifloordiv",
        "updates any object the pickle can name in place",
    ),
    ("ilshift", "updates any object the pickle can name in place"),
    ("imatmul", "updates any object the pickle can name in place"),
    ("imod", "updates any object the pickle can name in place"),
    ("imul", "updates any object the pickle can name in place"),
    ("ior", "updates any object the pickle can name in place"),
    ("ipow", "updates any object the pickle can name in place"),
    ("irshift", "updates any object the pickle can name in place"),
    ("isub", "updates any object the pickle can name in place"),
    (
        "itruediv",
        "updates any object the pickle can name in place",
    ),
    ("ixor", "updates any object the pickle can name in place"),
];

/// Globals under a dangerous module that are plain data, with why: the module's rule is
/// about its other members.
const DATA_UNDER_DANGEROUS: &[(&str, &str)] = &[(
    "torch._C.Generator",
    "a torch.Generator (a random number generator whose state is a byte tensor)",
)];

/// The members of `types` that are plain data: an attribute bag, read-only mappings and
/// the types of singletons and generic aliases. Every other member builds code, functions,
/// modules or classes (`types.CodeType`, `FunctionType`, `new_class`).
const DATA_TYPES: &[&str] = &[
    "SimpleNamespace",
    "MappingProxyType",
    "NoneType",
    "EllipsisType",
    "NotImplementedType",
    "GenericAlias",
    "UnionType",
];

/// Why the dotted path `path` (a global's `module.name`, or a tail of it) is dangerous as
/// a function of `operator` or `types`, if it is.
fn dangerous_member(path: &str) -> Option<String> {
    let (module, name) = path.split_once('.')?;
    match module {
        "operator" | "_operator" => {
            let head = name.split('.').next().unwrap_or(name);
            let (_, why) = DANGEROUS_OPERATORS.iter().find(|(n, _)| *n == head)?;
            Some(format!("`{module}.{head}` {why}"))
        }
        "types" if !DATA_TYPES.contains(&name) => Some(format!(
            "`types.{name}` builds code, functions, modules or classes (only the data \
             members of `types`, such as SimpleNamespace, are not)"
        )),
        "pathlib" if name.contains('.') => Some(format!(
            "`pathlib.{name}` is a method of a path: it reads, writes or deletes files"
        )),
        _ => None,
    }
}

/// Whether `path` is `prefix` or a dotted child of it (`os.path` is under `os`).
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Whether `module.name` (Python 3 spelling) is data, as the table of globals says:
/// torch's weights-only allowlist and what ckpt reads as data, numpy's arrays, and the DCP
/// metadata classes.
pub(crate) fn is_data(module: &str, name: &str) -> bool {
    globals::lookup(module, name).is_some_and(globals::Global::is_data)
}

/// Judges the global `module.name` as written in a pickle (Python 2 names are mapped
/// first). `allow` holds the user's extra `module.name` (or whole `module`) entries,
/// which turn `unsafe` into `safe` but never hide a dangerous global.
pub(crate) fn classify(module: &str, name: &str, allow: &[String]) -> Judgement {
    let (module, name) = ckpt_pickle::python3_name(module, name);
    let full = format!("{module}.{name}");
    if module.is_empty() || name.is_empty() {
        return Judgement::new(
            Verdict::Dangerous,
            "a global with an empty module or name, which loaders resolve in surprising ways",
        );
    }
    let parts: Vec<&str> = name.split('.').collect();
    if module == "builtins" {
        let head = parts.first().copied().unwrap_or(name);
        if let Some((_, why)) = DANGEROUS_BUILTINS.iter().find(|(n, _)| *n == head) {
            return Judgement::new(Verdict::Dangerous, format!("`builtins.{head}` {why}"));
        }
    }
    // 1. Attribute paths inside the name: `random._os.system`, `numpy.__builtins__`.
    for (i, part) in parts.iter().enumerate() {
        let dunder = part.len() > 4 && part.starts_with("__") && part.ends_with("__");
        let harmless_dunder = i == 0 && matches!(*part, "__newobj__" | "__newobj_ex__");
        if dunder && !harmless_dunder {
            return Judgement::new(
                Verdict::Dangerous,
                format!(
                    "reaches `{part}` of `{module}`: interpreter internals that lead to any \
                     module, builtin or code object"
                ),
            );
        }
        if parts.len() > 1 && DANGEROUS_ATTRIBUTES.contains(part) {
            return Judgement::new(
                Verdict::Dangerous,
                format!(
                    "reaches `{part}` through an attribute of `{module}`: the dotted name \
                     resolves to a dangerous module or function (as `random._os.system` is \
                     `os.system`)"
                ),
            );
        }
    }
    // Any tail of the dotted path that is itself a dangerous path: `logging.io.FileIO` is
    // `io.FileIO`, `torch._utils.torch.save` is `torch.save`.
    if parts.len() > 1 {
        for start in 0..parts.len() {
            let tail = parts.get(start..).unwrap_or_default().join(".");
            if let Some((prefix, why)) = DANGEROUS_MODULES.iter().find(|(p, _)| under(&tail, p)) {
                return Judgement::new(
                    Verdict::Dangerous,
                    format!("reaches `{tail}` through attributes of `{module}`: `{prefix}` {why}"),
                );
            }
            if let Some(why) = dangerous_member(&tail) {
                return Judgement::new(
                    Verdict::Dangerous,
                    format!("reaches `{tail}` through attributes of `{module}`: {why}"),
                );
            }
        }
    }
    // 2. Data, by exact name. joblib's array wrapper is a container its unpickler fills
    // with an array's bytes (ckpt reads them as it does); to `pickle.load` it is an empty
    // object.
    if crate::joblib::is_wrapper(module, name) {
        return Judgement::new(
            Verdict::Safe,
            "joblib's numpy array wrapper: the array's bytes follow it in the stream",
        );
    }
    if is_data(module, name) {
        return Judgement::new(
            Verdict::Safe,
            "data (torch's weights-only allowlist, numpy arrays or DCP metadata)",
        );
    }
    // 3. Dangerous modules and functions, by dotted prefix of the full path.
    if let Some((_, why)) = DATA_UNDER_DANGEROUS.iter().find(|(p, _)| *p == full) {
        return Judgement::new(
            Verdict::Unsafe,
            format!("{why}: not code, but a class torch's weights-only loader refuses"),
        );
    }
    if let Some((prefix, why)) = DANGEROUS_MODULES.iter().find(|(p, _)| under(&full, p)) {
        return Judgement::new(Verdict::Dangerous, format!("`{prefix}` {why}"));
    }
    let pathlib_local = module
        .strip_prefix("pathlib.")
        .map(|_| format!("pathlib.{name}"));
    if let Some(why) = dangerous_member(pathlib_local.as_deref().unwrap_or(&full)) {
        return Judgement::new(Verdict::Dangerous, why);
    }
    if allow
        .iter()
        .any(|entry| !entry.is_empty() && (full == *entry || under(module, entry)))
    {
        return Judgement::new(Verdict::Safe, "allowed with --allow");
    }
    // 4. The rest is code we cannot vouch for.
    if let Some((_, _, why)) = UNSAFE_KNOWN
        .iter()
        .find(|(m, n, _)| *m == module && *n == name)
    {
        return Judgement::new(Verdict::Unsafe, format!("{why}; loading it runs that code"));
    }
    if parts.len() > 1 {
        return Judgement::new(
            Verdict::Unsafe,
            format!(
                "an attribute path (`{name}`) inside `{module}`, which loaders follow \
                 attribute by attribute; not known to be data"
            ),
        );
    }
    Judgement::new(
        Verdict::Unsafe,
        format!(
            "not known to be data: loading it imports `{module}` and runs its code for \
             `{name}` (a custom class or function)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(module: &str, name: &str) -> Verdict {
        classify(module, name, &[]).verdict
    }

    #[test]
    fn the_classification_table() {
        let table: &[(&str, &str, Verdict)] = &[
            ("torch._utils", "_rebuild_tensor_v2", Verdict::Safe),
            ("torch.serialization", "_get_layout", Verdict::Safe),
            ("torch.jit._pickle", "build_intlist", Verdict::Safe),
            ("torch.jit._pickle", "load", Verdict::Dangerous),
            ("collections", "OrderedDict", Verdict::Safe),
            ("torch", "FloatStorage", Verdict::Safe),
            ("torch", "bfloat16", Verdict::Safe),
            ("__builtin__", "set", Verdict::Safe),
            ("_codecs", "encode", Verdict::Safe),
            ("numpy.core.multiarray", "_reconstruct", Verdict::Safe),
            ("numpy", "dtype", Verdict::Safe),
            (
                "torch.distributed.checkpoint.metadata",
                "Metadata",
                Verdict::Safe,
            ),
            ("argparse", "Namespace", Verdict::Unsafe),
            ("collections", "defaultdict", Verdict::Unsafe),
            ("torch.nn.modules.linear", "Linear", Verdict::Unsafe),
            ("__main__", "MyModel", Verdict::Unsafe),
            ("__torch__", "Model", Verdict::Unsafe),
            ("os", "system", Verdict::Dangerous),
            ("posix", "system", Verdict::Dangerous),
            ("nt", "system", Verdict::Dangerous),
            ("os.path", "join", Verdict::Dangerous),
            ("subprocess", "Popen", Verdict::Dangerous),
            ("builtins", "eval", Verdict::Dangerous),
            ("__builtin__", "eval", Verdict::Dangerous),
            ("builtins", "getattr", Verdict::Dangerous),
            ("builtins", "__import__", Verdict::Dangerous),
            ("pkgutil", "resolve_name", Verdict::Dangerous),
            ("importlib", "import_module", Verdict::Dangerous),
            ("_frozen_importlib", "BuiltinImporter", Verdict::Dangerous),
            ("operator", "attrgetter", Verdict::Dangerous),
            ("operator", "methodcaller", Verdict::Dangerous),
            ("_operator", "attrgetter", Verdict::Dangerous),
            ("runpy", "_run_code", Verdict::Dangerous),
            ("code", "InteractiveInterpreter", Verdict::Dangerous),
            ("cProfile", "run", Verdict::Dangerous),
            ("timeit", "timeit", Verdict::Dangerous),
            ("idlelib.pyshell", "ModifiedInterpreter", Verdict::Dangerous),
            ("uuid", "_get_command_stdout", Verdict::Dangerous),
            ("typing", "_eval_type", Verdict::Dangerous),
            ("setuptools._distutils.spawn", "spawn", Verdict::Dangerous),
            (
                "asyncio.unix_events",
                "_UnixSubprocessTransport",
                Verdict::Dangerous,
            ),
            ("logging", "FileHandler", Verdict::Dangerous),
            ("io", "FileIO", Verdict::Dangerous),
            ("urllib.request", "urlopen", Verdict::Dangerous),
            ("ssl", "get_server_certificate", Verdict::Dangerous),
            ("http.server", "HTTPServer", Verdict::Dangerous),
            ("webbrowser", "open", Verdict::Dangerous),
            ("pickle", "loads", Verdict::Dangerous),
            ("_pickle", "loads", Verdict::Dangerous),
            ("dill", "loads", Verdict::Dangerous),
            ("torch", "load", Verdict::Dangerous),
            ("torch.jit", "load", Verdict::Dangerous),
            ("torch.serialization", "load", Verdict::Dangerous),
            ("torch.storage", "_load_from_bytes", Verdict::Dangerous),
            ("torch._ops", "ops", Verdict::Dangerous),
            ("codecs", "open", Verdict::Dangerous),
            ("codecs", "encode", Verdict::Unsafe),
            ("numpy", "savez_compressed", Verdict::Dangerous),
            ("numpy", "load", Verdict::Dangerous),
            ("torch.utils.collect_env", "run", Verdict::Dangerous),
            (
                "numpy.testing._private.utils",
                "runstring",
                Verdict::Dangerous,
            ),
            ("pandas", "read_csv", Verdict::Dangerous),
            ("functools", "partial", Verdict::Unsafe),
            ("ctypes", "CDLL", Verdict::Dangerous),
            ("marshal", "loads", Verdict::Dangerous),
            ("types", "CodeType", Verdict::Dangerous),
            ("torch._C", "Generator", Verdict::Unsafe),
            ("torch._C", "Generator.manual_seed", Verdict::Dangerous),
            ("torch._C", "_load_for_lite_interpreter", Verdict::Dangerous),
            ("types", "FunctionType", Verdict::Dangerous),
            ("types", "new_class", Verdict::Dangerous),
            ("types", "ModuleType", Verdict::Dangerous),
            ("types", "SimpleNamespace.__init__", Verdict::Dangerous),
            // An attribute bag, not code (the issue that split `types`).
            ("types", "SimpleNamespace", Verdict::Unsafe),
            ("operator", "attrgetter", Verdict::Dangerous),
            ("_operator", "methodcaller", Verdict::Dangerous),
            ("_operator", "setitem", Verdict::Dangerous),
            ("operator", "ior", Verdict::Dangerous),
            ("_operator", "attrgetter.__call__", Verdict::Dangerous),
            // `typing.Dict[str, int]` pickles as `_operator.getitem(typing.Dict, ...)`.
            ("_operator", "getitem", Verdict::Unsafe),
            ("operator", "add", Verdict::Unsafe),
            // A path is built from text; its methods touch files.
            ("pathlib", "PosixPath", Verdict::Safe),
            ("pathlib", "Path", Verdict::Unsafe),
            ("pathlib._local", "PosixPath", Verdict::Unsafe),
            ("pathlib._local", "Path.write_bytes", Verdict::Dangerous),
            ("copy_reg", "_reconstructor", Verdict::Unsafe),
            ("copyreg", "add_extension", Verdict::Dangerous),
            ("asyncio", "create_subprocess_shell", Verdict::Dangerous),
            ("asyncio", "run", Verdict::Dangerous),
            ("_pyio", "FileIO", Verdict::Dangerous),
            ("logging", "basicConfig", Verdict::Dangerous),
            ("unittest.mock", "_get_target", Verdict::Dangerous),
            ("numpy.lib._npyio_impl", "load", Verdict::Dangerous),
            ("numpy.lib._format_impl", "read_array", Verdict::Dangerous),
            ("torch.utils.model_zoo", "load_url", Verdict::Dangerous),
            ("xml.dom.minidom", "parse", Verdict::Dangerous),
            ("gzip", "open", Verdict::Dangerous),
            ("__builtin__", "object", Verdict::Unsafe),
            ("builtins", "object.__subclasses__", Verdict::Dangerous),
        ];
        for &(module, name, expected) in table {
            assert_eq!(verdict(module, name), expected, "{module}.{name}");
        }
    }

    #[test]
    fn dotted_names_resolve_through_aliases() {
        assert_eq!(verdict("random", "_os.system"), Verdict::Dangerous);
        assert_eq!(verdict("pydantic", "_os.system"), Verdict::Dangerous);
        assert_eq!(verdict("pipes", "Template.copy"), Verdict::Dangerous);
        assert_eq!(verdict("torch", "serialization.load"), Verdict::Dangerous);
        assert_eq!(verdict("torch", "load"), Verdict::Dangerous);
        assert_eq!(verdict("numpy", "__builtins__"), Verdict::Dangerous);
        assert_eq!(verdict("mymod", "Foo.__globals__"), Verdict::Dangerous);
        assert_eq!(verdict("mymod", "X.sys.modules"), Verdict::Dangerous);
        assert_eq!(verdict("pathlib", "Path.touch"), Verdict::Dangerous);
        assert_eq!(
            verdict("mymod", "helpers.pathlib.Path.touch"),
            Verdict::Dangerous
        );
        assert_eq!(
            verdict("mymod", "op.operator.methodcaller"),
            Verdict::Dangerous
        );
        assert_eq!(verdict("mymod", "t.types.FunctionType"), Verdict::Dangerous);
        // A tail of the path that is a dangerous path, whatever module it goes through.
        assert_eq!(verdict("logging", "io.FileIO"), Verdict::Dangerous);
        assert_eq!(verdict("torch._utils", "torch.save"), Verdict::Dangerous);
        assert_eq!(
            verdict("xml.sax.saxutils", "urllib.request.urlretrieve"),
            Verdict::Dangerous
        );
        assert_eq!(
            verdict("mymod", "helpers.pkgutil.resolve_name"),
            Verdict::Dangerous
        );
        assert_eq!(verdict("mymod", "sub.Thing"), Verdict::Unsafe);
        // Unknown dotted names are at least unsafe.
        assert_eq!(verdict("mymod", "Outer.Inner"), Verdict::Unsafe);
        assert_eq!(
            verdict("collections", "OrderedDict.fromkeys"),
            Verdict::Unsafe
        );
        assert_eq!(verdict("copyreg", "__newobj__"), Verdict::Unsafe);
        assert_eq!(
            verdict("pathlib", "PosixPath.write_text"),
            Verdict::Dangerous
        );
    }

    #[test]
    fn allow_turns_unsafe_into_safe_but_never_hides_danger() {
        let allow = vec![
            "mymod.Config".to_owned(),
            "mypkg".to_owned(),
            "os".to_owned(),
        ];
        assert_eq!(classify("mymod", "Config", &allow).verdict, Verdict::Safe);
        assert_eq!(classify("mymod", "Other", &allow).verdict, Verdict::Unsafe);
        assert_eq!(
            classify("mypkg.sub", "Thing", &allow).verdict,
            Verdict::Safe
        );
        assert_eq!(classify("os", "system", &allow).verdict, Verdict::Dangerous);
        assert_eq!(
            classify("mypkg", "_os.system", &allow).verdict,
            Verdict::Dangerous
        );
    }
}

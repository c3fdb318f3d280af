//! Any bytes through the pickle machine and the static pass: every global the machine makes
//! (even before an error) must be one `static_globals` reports at the same offset under the
//! same name, or an `EXT` code it reports as unresolved; neither may panic. This is what a
//! scanner relies on when it judges what lies past the point where the machine stopped.
#![no_main]

use ckpt::pickle::{Limits, Object, Opcode, StaticName, parse_partial, static_globals};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let (pickle, _) = parse_partial(data, 0, &limits);
    let found = static_globals(data, 0, &limits);
    for (id, object) in pickle.objects() {
        let Object::Global { module, name } = object else {
            continue;
        };
        let offset = pickle.offset(id);
        let Some(global) = found.iter().find(|g| g.offset == offset) else {
            panic!("the machine made {module}.{name} at {offset}; the static pass has nothing there");
        };
        let unresolved_ext = matches!(global.opcode, Opcode::Ext1 | Opcode::Ext2 | Opcode::Ext4)
            && matches!(global.name, StaticName::Extension(_));
        assert!(
            global.module_name() == Some((module, name)) || unresolved_ext,
            "the machine made {module}.{name} at {offset}; the static pass says {global:?}"
        );
    }
});

//! Whether a compiled component fits the `job-handler` world, with messages
//! that name the missing export or the unknown import.

use wasmtime::Engine;
use wasmtime::component::types::{ComponentExtern, ComponentItem};
use wasmtime::component::{Component, Linker};

use super::RuntimeError;
use super::bindings::{HANDLER_EXPORT, JobHandlerPre, WORLD};
use super::sandbox::HostState;

/// Check exports and imports, and prepare the instance for fast instantiation.
pub fn fit(
    engine: &Engine,
    linker: &Linker<HostState>,
    component: &Component,
) -> Result<JobHandlerPre<HostState>, RuntimeError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    match ty.exports(engine).find(|(name, _)| *name == HANDLER_EXPORT) {
        Some((
            _,
            ComponentExtern {
                ty: ComponentItem::ComponentInstance(_),
                ..
            },
        )) => {}
        Some(_) => {
            return Err(RuntimeError::WrongWorld(format!(
                "`{HANDLER_EXPORT}` is exported but is not an interface instance"
            )));
        }
        None => {
            let found = if exports.is_empty() {
                "it exports nothing".to_string()
            } else {
                format!("it exports {}", exports.join(", "))
            };
            return Err(RuntimeError::WrongWorld(format!(
                "missing export `{HANDLER_EXPORT}` ({found}); build the plugin against the world `{WORLD}`"
            )));
        }
    }

    let instance_pre = linker.instantiate_pre(component).map_err(|e| {
        let message = format!("{e:#}");
        RuntimeError::WrongWorld(format!(
            "unknown import: {message}; plugins may import only `corral:plugin/host@0.1.0`, \
             `wasi:http/outgoing-handler` and the WASI 0.2 interfaces"
        ))
    })?;
    JobHandlerPre::new(instance_pre).map_err(|e| {
        RuntimeError::WrongWorld(format!(
            "export `{HANDLER_EXPORT}` does not match the world `{WORLD}`: {e:#}"
        ))
    })
}

//! `weft plugin check FILE.wasm`: what a component is and imports, or why it
//! would be refused.

use std::path::Path;

use weft_runtime::Limits;

pub fn check(file: &Path, config: Vec<(String, String)>) -> anyhow::Result<()> {
    let rt = crate::cli::runtime()?;
    let name = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "plugin".into());
    let bytes = std::fs::read(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    println!("file:        {} ({:.1} MB)", file.display(), bytes.len() as f64 / 1e6);
    if let Ok(imports) = rt.imports(&name, &bytes) {
        println!("imports:");
        for import in &imports {
            println!("  {import}");
        }
    }
    match rt.load(&name, &bytes, Limits::default(), config) {
        Ok(p) => {
            println!("world:       weft:plugin/{}", p.world.world_name());
            println!("contract:    weft:plugin@{} (host serves {})", p.contract, weft_runtime::CONTRACT_VERSION);
            println!("name:        {}", p.info.name);
            println!("version:     {}", p.info.version);
            println!("description: {}", p.info.description);
            println!("sha256:      {}", p.hash);
            println!("status:      ok");
            Ok(())
        }
        Err(e) => {
            println!("status:      refused ({})", e.kind());
            println!("reason:      {}", e.message);
            if let Some(import) = unprovided(&e.message) {
                println!("not provided by the host: {import}");
            }
            anyhow::bail!("{} would be refused: {}", file.display(), e)
        }
    }
}

/// The import a link error names (wasmtime: "component imports instance `X`, but ...").
fn unprovided(message: &str) -> Option<&str> {
    let rest = message.split("component imports ").nth(1)?;
    let start = rest.find('`')? + 1;
    let len = rest[start..].find('`')?;
    Some(&rest[start..start + len])
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_the_import_a_link_error_names() {
        let m = "the component's imports cannot be satisfied: component imports instance `wasi:http/types@0.2.10`, but a matching implementation was not found in the linker";
        assert_eq!(super::unprovided(m), Some("wasi:http/types@0.2.10"));
        assert_eq!(super::unprovided("not a valid component"), None);
    }
}

// The web console's files (console/src at the repository root) are embedded in the binary: this
// lists every one of them for `include_bytes!`, so the console needs no Node at build time and
// no file beside the binary at run time.
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let console = manifest.join("../../console/src");
    println!("cargo:rerun-if-changed={}", console.display());
    let mut names = Vec::new();
    if !console.is_dir() {
        println!("cargo:warning=no console at {}: the binary will serve the JSON API without the web console", console.display());
    }
    if console.is_dir() {
        for entry in std::fs::read_dir(&console)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().into_string().map_err(|name| format!("console file name not utf-8: {name:?}"))?);
            }
        }
    }
    names.sort();
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("console_assets.rs");
    let mut file = std::fs::File::create(out)?;
    writeln!(file, "pub static CONSOLE_FILES: &[(&str, &[u8])] = &[")?;
    for name in names {
        let path = console.join(&name).canonicalize()?;
        writeln!(file, "    ({name:?}, include_bytes!({:?})),", path.display().to_string())?;
    }
    writeln!(file, "];")?;
    Ok(())
}

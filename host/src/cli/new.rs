//! `corral new rust|python|js NAME`: write a plugin project that builds with
//! one command and runs with `corral run`. Everything it needs is written
//! into it (the WIT contract, the language's helper, the toolchain's pin),
//! so it builds wherever it is, with no checkout of Corral: the files are
//! embedded in the binary from the same sources the example plugins build
//! from.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The languages a project can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    Rust,
    Python,
    Js,
}

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The plugin's language.
    pub language: Language,
    /// The plugin's name (what you upload it as): 1-63 characters of a-z,
    /// 0-9, _ and -, starting with a letter.
    pub name: String,
    /// The folder to write (default: ./NAME); must not exist or be empty.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// A file of a project: where, what, and whether it is a script.
struct File {
    path: &'static str,
    text: String,
    executable: bool,
}

/// The WIT contract every project builds against.
const WIT: [(&str, &str); 8] = [
    ("wit/plugin.wit", include_str!("../../../wit/plugin.wit")),
    (
        "wit/deps/cli.wit",
        include_str!("../../../wit/deps/cli.wit"),
    ),
    (
        "wit/deps/clocks.wit",
        include_str!("../../../wit/deps/clocks.wit"),
    ),
    (
        "wit/deps/filesystem.wit",
        include_str!("../../../wit/deps/filesystem.wit"),
    ),
    (
        "wit/deps/http.wit",
        include_str!("../../../wit/deps/http.wit"),
    ),
    ("wit/deps/io.wit", include_str!("../../../wit/deps/io.wit")),
    (
        "wit/deps/random.wit",
        include_str!("../../../wit/deps/random.wit"),
    ),
    (
        "wit/deps/sockets.wit",
        include_str!("../../../wit/deps/sockets.wit"),
    ),
];

/// Write the project and print how to build and run it.
pub fn run(args: NewArgs) -> anyhow::Result<i32> {
    check_name(&args.name)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!("{} exists and is not empty", dir.display());
    }
    let (files, build, wasm) = project(args.language, &args.name);
    for file in files {
        write(&dir.join(file.path), &file.text, file.executable)?;
    }
    println!(
        "wrote a {:?} plugin `{}` in {}",
        args.language,
        args.name,
        dir.display()
    );
    println!("build it:   cd {} && {build}", dir.display());
    println!("run it:     corral run {wasm} --input '{{\"name\": \"Ada\"}}'");
    println!("upload it:  corral plugin push {} {wasm}", args.name);
    Ok(0)
}

fn check_name(name: &str) -> anyhow::Result<()> {
    // A plugin name that is also a Rust crate and a Python module name.
    if !crate::model::Name::is_valid(name) || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        bail!(
            "`{name}` is not a plugin name: 1-63 characters of a-z, 0-9, _ and -, starting with a letter"
        );
    }
    Ok(())
}

/// The files of a project, the command that builds it, and what it builds.
fn project(language: Language, name: &str) -> (Vec<File>, &'static str, String) {
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{artifact}}", &name.replace('-', "_"))
    };
    let file = |path: &'static str, text: String| File {
        path,
        text,
        executable: false,
    };
    let mut files: Vec<File> = WIT
        .iter()
        .map(|(path, text)| file(path, text.to_string()))
        .collect();
    files.push(file(
        ".gitignore",
        fill(include_str!("../../templates/new/gitignore.tmpl")),
    ));
    let (build, wasm) = match language {
        Language::Rust => {
            files.extend([
                file(
                    "Cargo.toml",
                    fill(include_str!("../../templates/new/rust_cargo.toml.tmpl")),
                ),
                file(
                    ".cargo/config.toml",
                    "[build]\ntarget = \"wasm32-wasip2\"\n".into(),
                ),
                file(
                    "src/lib.rs",
                    fill(include_str!("../../templates/new/rust_lib.rs.tmpl")),
                ),
                file(
                    "corral-sdk/Cargo.toml",
                    include_str!("../../templates/new/rust_sdk_cargo.toml.tmpl").into(),
                ),
                file(
                    "corral-sdk/src/lib.rs",
                    include_str!("../../../guest-sdk/src/lib.rs").into(),
                ),
                file(
                    "corral-sdk/src/http.rs",
                    include_str!("../../../guest-sdk/src/http.rs").into(),
                ),
            ]);
            (
                "cargo build --release",
                format!(
                    "target/wasm32-wasip2/release/{}.wasm",
                    name.replace('-', "_")
                ),
            )
        }
        Language::Python => {
            files.extend([
                file(
                    "app.py",
                    fill(include_str!("../../templates/new/python_app.py.tmpl")),
                ),
                File {
                    path: "build.sh",
                    text: fill(include_str!("../../templates/new/python_build.sh.tmpl")),
                    executable: true,
                },
                file(
                    "requirements.txt",
                    include_str!("../../../plugins/python/requirements.txt").into(),
                ),
                file(
                    "corral/__init__.py",
                    include_str!("../../../plugins/python/corral/__init__.py").into(),
                ),
                file(
                    "corral/http.py",
                    include_str!("../../../plugins/python/corral/http.py").into(),
                ),
                file("corral/py.typed", String::new()),
            ]);
            ("./build.sh", format!("{name}.wasm"))
        }
        Language::Js => {
            // The lock pins componentize-js and everything under it, as the
            // example plugins build with; only the project's name differs.
            let lock = include_str!("../../../plugins/js/package-lock.json").replacen(
                "\"name\": \"corral-plugin\"",
                &format!("\"name\": \"{name}\""),
                2,
            );
            files.extend([
                file(
                    "app.js",
                    fill(include_str!("../../templates/new/js_app.js.tmpl")),
                ),
                File {
                    path: "build.sh",
                    text: fill(include_str!("../../templates/new/js_build.sh.tmpl")),
                    executable: true,
                },
                file(
                    "package.json",
                    fill(include_str!("../../templates/new/js_package.json.tmpl")),
                ),
                file("package-lock.json", lock),
                file(
                    "corral.js",
                    include_str!("../../../plugins/js/corral.js").into(),
                ),
                file(
                    "corral.d.ts",
                    include_str!("../../../plugins/js/corral.d.ts").into(),
                ),
            ]);
            ("./build.sh", format!("{name}.wasm"))
        }
    };
    (files, build, wasm)
}

fn write(path: &Path, text: &str, executable: bool) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    if executable {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_plugin_names_that_start_with_a_letter() {
        assert!(check_name("hello-world").is_ok());
        for bad in ["", "1st", "Hello", "a/b", "-x", &"a".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_project_has_the_contract_and_its_name() {
        for language in [Language::Rust, Language::Python, Language::Js] {
            let (files, _, wasm) = project(language, "hello-world");
            assert!(files.iter().any(|f| f.path == "wit/plugin.wit"));
            assert!(wasm.ends_with(".wasm"));
            assert!(
                files
                    .iter()
                    .all(|f| !f.text.contains("{{name}}") && !f.text.contains("{{artifact}}")),
                "{language:?}: a placeholder left"
            );
        }
        let (files, _, _) = project(Language::Js, "hello-world");
        let lock = files
            .iter()
            .find(|f| f.path == "package-lock.json")
            .unwrap();
        assert!(lock.text.contains("\"name\": \"hello-world\""));
    }
}

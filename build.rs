//! Embeds the metric definitions in `sql/` so every binary (CLI and Lambdas) carries the same catalog,
//! and checks that the admin console's chart library (an npm package, pinned in `console/`) is there
//! to be built in.
use std::{env, fs, path::Path};

fn main() {
    // Read when the script runs, not built into it: a build script compiled for one checkout
    // can be reused by another sharing the target directory.
    let root = env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&root);
    let chart = root.join("console/node_modules/uplot/dist");
    println!("cargo:rerun-if-changed={}", chart.display());
    if !chart.join("uPlot.iife.min.js").exists() {
        panic!(
            "the admin console's chart library is not installed: run `make console` \
             (npm ci in console/; make demo, make test and make package do it for you)"
        );
    }
    let dir = root.join("sql");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("sql/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    let mut out = String::from("pub(crate) const BUILTIN_SQL: &[(&str, &str)] = &[\n");
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        out.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            f.display().to_string()
        ));
    }
    out.push_str("];\n");
    fs::write(
        Path::new(&env::var("OUT_DIR").unwrap()).join("builtin_sql.rs"),
        out,
    )
    .unwrap();
}

//! Writes the C bindings of a WIT folder, or builds a C component:
//! `cargo run -p cella-build --example bindings -- <wit> <out dir> [<file.c> <include dir> <out.wasm>]`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(wit), Some(out)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: bindings <wit dir> <out dir> [<file.c> <include dir> <out.wasm>]");
        std::process::exit(2);
    };
    let result = match (args.get(3), args.get(4), args.get(5)) {
        (Some(source), Some(include), Some(wasm)) => {
            let tools = cella_build::Tools::new(std::env::temp_dir().join("cella-tools"));
            cella_build::build_c(&tools, wit.as_ref(), &[source.into()], &[include.into()], out.as_ref(), wasm.as_ref())
                .map(|()| vec![wasm.into()])
        }
        _ => cella_build::c_bindings(wit.as_ref(), out.as_ref()),
    };
    match result {
        Ok(files) => files.iter().for_each(|f| println!("{}", f.display())),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

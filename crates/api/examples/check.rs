//! Prints what parse → default → validate says about manifest files.
fn main() {
    for path in std::env::args().skip(1) {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                println!("{path}: {e}");
                continue;
            }
        };
        let name = path.rsplit('/').next().unwrap_or(&path).to_string();
        match podhost_api::parse_manifests(&text, &name) {
            Err(e) => println!("{e}"),
            Ok(ms) => {
                for m in ms {
                    let podhost_api::Manifest::Pod(mut pod) = m else {
                        println!("{name}: {} (not checked here)", m.kind());
                        continue;
                    };
                    podhost_api::default_pod(&mut pod);
                    let n = pod.metadata.name.clone().unwrap_or_default();
                    match podhost_api::validate_pod(&pod).into_result(&n) {
                        Ok(w) => println!("{name}: ok, warnings {w:?}"),
                        Err(e) => println!("{e}"),
                    }
                }
            }
        }
    }
}

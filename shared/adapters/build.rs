//! Embeds the RDS CA bundle (`rds-ca/global-bundle.pem`, fetched from AWS by `make rds-ca`) in
//! every binary built while it is present, so the functions carry their trust anchor however they
//! are packaged: `sam build`'s rust-cargolambda method ships only the `bootstrap` binary, not the
//! files `[package.metadata.lambda.deploy] include` names. Without the file the build goes on
//! (tests use their own CA) and says so; the functions then read the path at run time and name it
//! when it is missing (shared/adapters/src/mysql.rs).

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let bundle = manifest.join("../../rds-ca/global-bundle.pem");
    println!("cargo:rerun-if-changed={}", bundle.display());
    println!("cargo:rerun-if-env-changed=PROFILE");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it")).join("rds_ca.rs");
    let code = match std::fs::read(&bundle) {
        Ok(pem) if pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") => format!(
            "/// The RDS CA bundle embedded at build time.\npub const EMBEDDED_RDS_CA: Option<&[u8]> = Some(include_bytes!({:?}));\n",
            bundle.canonicalize().expect("the bundle was just read")
        ),
        _ => {
            if std::env::var("PROFILE").as_deref() == Ok("release") {
                println!(
                    "cargo:warning=rds-ca/global-bundle.pem is absent: this release build embeds no RDS CA bundle (run `make rds-ca` before building for deployment)"
                );
            }
            "/// No RDS CA bundle was present at build time.\npub const EMBEDDED_RDS_CA: Option<&[u8]> = None;\n".to_string()
        }
    };
    std::fs::write(out, code).expect("OUT_DIR is writable");
}

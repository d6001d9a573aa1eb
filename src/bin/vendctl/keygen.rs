//! `vendctl keygen`: a new operator key pair. The secret key goes to a file only its owner
//! can read (mode 0600, never overwritten); the public key is printed for the machine's
//! `mqtt.operator_keys` and written beside it as `<FILE>.pub`.

use anyhow::Context;
use clap::Args;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vendd::report::command::{encode_key, generate_keypair};

#[derive(Args, Debug)]
pub(crate) struct KeygenArgs {
    /// Secret key file to create (refused if it exists).
    #[arg(long, value_name = "FILE", default_value = "vendd-operator.key")]
    out: PathBuf,
}

pub(crate) fn run(a: &KeygenArgs) -> anyhow::Result<ExitCode> {
    let (secret, public) = generate_keypair();
    let public_hex = encode_key(public.as_bytes());
    write_new(&a.out, 0o600, &encode_key(secret.as_bytes()))?;
    let pub_path = PathBuf::from(format!("{}.pub", a.out.display()));
    write_new(&pub_path, 0o644, &public_hex)?;
    println!("{public_hex}");
    eprintln!(
        "secret key written to {} (mode 0600; keep it off the machines); public key in {}.\n\
         Add the public key above to the machine's config: mqtt.operator_keys = [\"{public_hex}\"]",
        a.out.display(),
        pub_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_new(path: &Path, mode: u32, text: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    writeln!(f, "{text}")?;
    f.sync_all()?;
    Ok(())
}

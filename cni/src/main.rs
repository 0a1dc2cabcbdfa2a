//! `rudder-cni`: the CNI plugin binary. Reads the `CNI_*` environment and the
//! network config on stdin, prints the result (or the spec's error JSON,
//! exiting 1) on stdout.

use std::{
    io::{Read, Write},
    process::ExitCode,
};

use rudder_cni::{env::Invocation, error_json, run};

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    let outcome = read
        .map_err(|e| rudder_cni::CniError::Decode(format!("cannot read stdin: {e}")))
        .and_then(|_| Invocation::from_env())
        .and_then(|invocation| run(&invocation, &stdin));
    let (output, code) = match outcome {
        Ok(Some(value)) => (Some(value), ExitCode::SUCCESS),
        Ok(None) => (None, ExitCode::SUCCESS),
        Err(err) => {
            // Runtimes log stderr; the JSON on stdout is what they parse.
            eprintln!("rudder-cni: {err}");
            (Some(error_json(&err, &stdin)), ExitCode::FAILURE)
        }
    };
    if let Some(value) = output {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{value}");
    }
    code
}

//! Running the real kubectl (found on PATH; `cargo xtask setup` installs
//! it) from a test: bounded in time, its home and cache in a directory of
//! the test's.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// How long one kubectl command may take before the test fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

pub fn kubectl_path() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file())
        .expect("kubectl is not on PATH: run `cargo xtask setup`, which installs it")
}

/// Runs kubectl with `args` and `kubeconfig`, its home and cache in
/// `home`, bounded by [`COMMAND_TIMEOUT`]: (success, stdout, stderr).
pub async fn kubectl(
    kubectl: &Path,
    home: &Path,
    kubeconfig: &Path,
    args: &[&str],
) -> (bool, String, String) {
    let mut command = Command::new(kubectl);
    command
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--cache-dir={}", home.join("cache").display()))
        .args(args)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let described = format!("kubectl {}", args.join(" "));
    tokio::task::spawn_blocking(move || run_bounded(command, &described))
        .await
        .expect("kubectl task")
}

/// The stdout of a kubectl run that must have succeeded.
pub fn succeeded(args: &[&str], (success, stdout, stderr): (bool, String, String)) -> String {
    assert!(
        success,
        "kubectl {} failed:\n{stderr}\n{stdout}",
        args.join(" ")
    );
    stdout
}

fn run_bounded(mut command: Command, described: &str) -> (bool, String, String) {
    let mut child = command.spawn().expect("kubectl starts");
    let mut stdout_pipe = child.stdout.take().expect("stdout");
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let stdout_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout_pipe.read_to_string(&mut text);
        text
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("kubectl wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{described} did not finish within {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout_reader.join().expect("stdout reader");
    let stderr = stderr_reader.join().expect("stderr reader");
    (status.success(), stdout, stderr)
}

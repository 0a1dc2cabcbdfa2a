//! Running a loaded program on a crafted packet with BPF_PROG_TEST_RUN:
//! the kernel executes the real program against the bytes given, without
//! any interface. Tests use it for exact packet-level assertions, benchmarks
//! for the per-packet cost.

use std::time::Duration;

use aya::programs::{Program, TestRun, TestRunOptions};

use super::{Dataplane, DataplaneError};

/// What one BPF_PROG_TEST_RUN returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramRun {
    /// The program's return value (a TC_ACT_* / TCX_* or XDP_* verdict).
    pub verdict: i32,
    /// The packet as the program left it.
    pub packet: Vec<u8>,
    /// Mean time per run, as the kernel measured it.
    pub duration: Duration,
}

impl Dataplane {
    /// Runs the tc or XDP program `name` `repeat` times on `packet` (which
    /// starts with the Ethernet header) and returns the verdict and the
    /// packet as the last run left it.
    ///
    /// # Errors
    /// When the program does not exist, is of another type, or the kernel
    /// rejects the run (a packet shorter than an Ethernet header, say).
    pub fn run_program(
        &mut self,
        name: &'static str,
        packet: &[u8],
        repeat: u32,
    ) -> Result<ProgramRun, DataplaneError> {
        // Room for programs that grow the packet (encapsulation, ICMP errors).
        let mut out = vec![0u8; packet.len() + 256];
        let opts = TestRunOptions {
            data_in: Some(packet),
            data_out: Some(&mut out),
            repeat: repeat.max(1),
            ..TestRunOptions::default()
        };
        let result = match self.ebpf.program(name) {
            Some(Program::SchedClassifier(_)) => self.classifier(name)?.test_run(opts),
            Some(Program::Xdp(_)) => self.xdp(name)?.test_run(opts),
            Some(_) => return Err(DataplaneError::NotTestable { name }),
            None => return Err(DataplaneError::ProgramMissing { name }),
        }
        .map_err(|source| DataplaneError::TestRun { name, source })?;
        out.truncate(result.data_size_out as usize);
        Ok(ProgramRun {
            // The kernel reports the verdict as u32; tc verdicts are signed.
            verdict: result.return_value as i32,
            packet: out,
            duration: result.duration,
        })
    }
}

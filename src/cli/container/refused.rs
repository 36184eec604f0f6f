//! The flags of `docker run`/`docker create` that berth does not carry out, taken so that each
//! is refused with one line saying why and what to use instead (exit 125), never accepted and
//! ignored, and not mistaken for a typo. Hidden from `--help`, which lists what berth does.
//! The two whose one value is berth's only behaviour (`--isolation default`,
//! `--volume-driver local`, and `--disable-content-trust`, docker's default) are taken.

use anyhow::{bail, Result};
use clap::Args;

// docker's flags berth refuses (each hidden; see the module's note). A plain comment, as
// CreateFlags'.
#[derive(Args, Debug, Clone, Default)]
pub struct RefusedFlags {
    #[arg(long, hide = true, value_name = "LIST")]
    blkio_weight_device: Vec<String>,
    #[arg(long, hide = true, value_name = "LIST")]
    device_read_bps: Vec<String>,
    #[arg(long, hide = true, value_name = "LIST")]
    device_read_iops: Vec<String>,
    #[arg(long, hide = true, value_name = "LIST")]
    device_write_bps: Vec<String>,
    #[arg(long, hide = true, value_name = "LIST")]
    device_write_iops: Vec<String>,
    #[arg(long, hide = true, allow_hyphen_values = true)]
    cpu_count: Option<String>,
    #[arg(long, hide = true, allow_hyphen_values = true)]
    cpu_percent: Option<String>,
    #[arg(long, hide = true)]
    io_maxbandwidth: Option<String>,
    #[arg(long, hide = true)]
    io_maxiops: Option<String>,
    #[arg(long, hide = true, allow_hyphen_values = true)]
    kernel_memory: Option<String>,
    #[arg(long, hide = true)]
    gpus: Option<String>,
    #[arg(long, hide = true)]
    link: Vec<String>,
    #[arg(long, hide = true)]
    link_local_ip: Vec<String>,
    #[arg(long, hide = true)]
    runtime: Option<String>,
    #[arg(long, hide = true)]
    storage_opt: Vec<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    use_api_socket: Option<String>,
    #[arg(long, hide = true)]
    isolation: Option<String>,
    #[arg(long, hide = true)]
    volume_driver: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    disable_content_trust: Option<String>,
}

impl RefusedFlags {
    /// The first flag given that berth does not carry out, as one line saying what to do.
    pub fn check(&self) -> Result<()> {
        let throttles = [
            ("--blkio-weight-device", &self.blkio_weight_device),
            ("--device-read-bps", &self.device_read_bps),
            ("--device-read-iops", &self.device_read_iops),
            ("--device-write-bps", &self.device_write_bps),
            ("--device-write-iops", &self.device_write_iops),
        ];
        if let Some((flag, _)) = throttles.iter().find(|(_, v)| !v.is_empty()) {
            bail!(
                "{flag} is not supported by berth: it sets no per-device block I/O weight or \
                 throttle; --blkio-weight weighs the container's I/O as a whole"
            );
        }
        let windows = [
            ("--cpu-count", &self.cpu_count),
            ("--cpu-percent", &self.cpu_percent),
            ("--io-maxbandwidth", &self.io_maxbandwidth),
            ("--io-maxiops", &self.io_maxiops),
        ];
        if let Some((flag, _)) = windows.iter().find(|(_, v)| v.is_some()) {
            bail!(
                "{flag} is a Windows containers' option (docker discards it on Linux): use \
                 --cpus or --cpuset-cpus for CPUs, --blkio-weight for I/O"
            );
        }
        if self.kernel_memory.is_some() {
            bail!(
                "--kernel-memory is not supported: kernel memory limits are deprecated in the \
                 kernel and in docker; --memory limits the container's memory, kernel's included"
            );
        }
        if self.gpus.is_some() {
            bail!(
                "--gpus is not supported by berth (it has no GPU vendor hooks): give the \
                 container the GPU's device nodes with --device"
            );
        }
        if !self.link.is_empty() {
            bail!(
                "--link is not supported by berth (docker's legacy links): put the containers \
                 on one network of `berth network create` (--network NAME), where they reach \
                 each other by name and --network-alias"
            );
        }
        if !self.link_local_ip.is_empty() {
            bail!(
                "--link-local-ip is not supported by berth: give addresses with --ip or --ip6 \
                 on a network of `berth network create`"
            );
        }
        if let Some(r) = &self.runtime {
            bail!(
                "--runtime {r}: berth runs every container with its own runtime; it uses no \
                 other OCI runtime"
            );
        }
        if !self.storage_opt.is_empty() {
            bail!(
                "--storage-opt is not supported by berth: its overlay snapshots take no \
                 per-container options (no size quota)"
            );
        }
        if self.use_api_socket.as_deref().is_some_and(|v| v != "false") {
            bail!(
                "--use-api-socket is not supported: berth has no daemon, so there is no API \
                 socket to give the container"
            );
        }
        match self.isolation.as_deref() {
            None | Some("" | "default") => {}
            Some(i) => bail!(
                "--isolation {i}: invalid isolation: Linux containers take only \"default\" \
                 (hyperv and process are Windows' isolations)"
            ),
        }
        match self.volume_driver.as_deref() {
            None | Some("" | "local") => {}
            Some(d) => bail!(
                "--volume-driver {d}: berth's volumes have one driver, local; no volume \
                 plugin can be used"
            ),
        }
        match self.disable_content_trust.as_deref() {
            None | Some("true" | "1") => {}
            Some("false" | "0") => bail!(
                "--disable-content-trust=false: berth does not verify image signatures \
                 (Docker Content Trust); pull by digest (IMAGE@sha256:…) to run exactly one \
                 image"
            ),
            Some(v) => bail!(
                "invalid argument \"{v}\" for \"--disable-content-trust\" flag: \
                 strconv.ParseBool: parsing \"{v}\": invalid syntax"
            ),
        }
        Ok(())
    }
}

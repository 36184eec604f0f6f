//! What a container shares with the host or with another container besides its network:
//! `--pid`, `--ipc`, `--uts` (`host`, `container:NAME`; `--ipc` also `none`, `private`,
//! `shareable`), `--cgroupns` (`host`, `private`) and `--userns` (`host`: berth remaps no
//! users, so that is every container).
//! `check` runs at `create` (docker's messages; a named container becomes its id); `apply`
//! at every start, when the other container's namespaces can be found. A shareable
//! container's /dev/shm is a tmpfs on the host (`<container>/shm`) that joiners bind.

use std::path::PathBuf;

use berth_runtime::oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};

use super::record::{ContainerRecord, HostConfig};
use super::volume::is_mount_point;
use super::{io_err, Engine, EngineError, Result, Status};

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::Invalid(msg.into())
}

impl Engine {
    /// Checks the modes as docker does and names joined containers by id.
    pub(super) fn check_namespace_modes(
        &self,
        host: &mut HostConfig,
        hostname: Option<&str>,
        domainname: Option<&str>,
    ) -> Result<()> {
        let joined = |mode: &mut String, bad: &str, container_ok: bool| -> Result<()> {
            if let Some(name) = mode.strip_prefix("container:") {
                if !container_ok || name.is_empty() {
                    return Err(invalid(bad));
                }
                *mode = format!("container:{}", self.resolve(name)?.id);
            }
            Ok(())
        };
        if !matches!(host.pid_mode.as_str(), "" | "host")
            && !host.pid_mode.starts_with("container:")
        {
            return Err(invalid("--pid: invalid PID mode"));
        }
        joined(&mut host.pid_mode, "--pid: invalid PID mode", true)?;
        let ipc_ok = matches!(
            host.ipc_mode.as_str(),
            "" | "host" | "none" | "private" | "shareable"
        ) || host.ipc_mode.starts_with("container:");
        if !ipc_ok || host.ipc_mode == "container:" {
            return Err(invalid(format!("Invalid IPC mode: {}", host.ipc_mode)));
        }
        joined(&mut host.ipc_mode, "", true)?;
        if !matches!(host.uts_mode.as_str(), "" | "host") {
            return Err(invalid("--uts: invalid UTS mode"));
        }
        if host.uts_mode == "host" {
            if hostname.is_some_and(|h| !h.is_empty()) {
                return Err(invalid("conflicting options: hostname and the UTS mode"));
            }
            if domainname.is_some_and(|d| !d.is_empty()) {
                return Err(invalid("conflicting options: domainname and the UTS mode"));
            }
        }
        if !matches!(host.cgroupns_mode.as_str(), "" | "host" | "private") {
            return Err(invalid("--cgroupns: invalid CGROUP mode"));
        }
        if host.cgroupns_mode == "private" && !berth_runtime::host_has_cgroupns() {
            return Err(invalid(
                "--cgroupns private: this kernel has no cgroup namespaces (use --cgroupns host)",
            ));
        }
        if host.cgroupns_mode.is_empty() {
            // What the container gets, for inspect's CgroupnsMode.
            host.cgroupns_mode = if berth_runtime::host_has_cgroupns() {
                "private".into()
            } else {
                "host".into()
            };
        }
        if !matches!(host.userns_mode.as_str(), "" | "host") {
            return Err(invalid(
                "--userns: invalid USER mode (berth remaps no users: only host is known)",
            ));
        }
        Ok(())
    }

    /// Sets the Spec's pid, ipc and uts namespaces as the record's modes ask: the host's (no
    /// namespace of its own), none (`--ipc none`: no /dev/shm) or a running container's.
    pub(super) fn apply_namespace_modes(
        &self,
        rec: &ContainerRecord,
        spec: &mut Spec,
    ) -> Result<()> {
        let h = &rec.host;
        let mut linux = spec.linux().clone().unwrap_or_default();
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        let mut drop_ns = vec![];
        let mut join = vec![];
        match h.pid_mode.as_str() {
            "host" => drop_ns.push(LinuxNamespaceType::Pid),
            m => {
                if let Some(id) = m.strip_prefix("container:") {
                    join.push((LinuxNamespaceType::Pid, "pid", self.pid_of(id, "PID")?));
                }
            }
        }
        // A donor that uses the host's IPC gives the same to its joiners: the host's (a
        // rootless berth could not join the host's namespace through the donor's).
        let donor_host = match h.ipc_mode.strip_prefix("container:") {
            Some(id) if self.load(id).is_ok_and(|d| d.host.ipc_mode == "host") => {
                // It must run, as any container joined.
                self.pid_of(id, "IPC")?;
                true
            }
            _ => false,
        };
        match h.ipc_mode.as_str() {
            _ if h.ipc_mode == "host" || donor_host => {
                drop_ns.push(LinuxNamespaceType::Ipc);
                host_ipc_mounts(&mut mounts);
            }
            "none" => mounts.retain(|m| m.destination() != &PathBuf::from("/dev/shm")),
            "shareable" => self.mount_shareable_shm(rec, &mut mounts)?,
            m => {
                if let Some(id) = m.strip_prefix("container:") {
                    let donor = self.load(id).map_err(|_| {
                        invalid(format!(
                            "joining the IPC namespace of container {id}: it no longer exists"
                        ))
                    })?;
                    if donor.host.ipc_mode != "shareable" && super::rootless::active() {
                        return Err(invalid(format!(
                            "rootless containers can join the IPC of a container only when it \
                             uses the host's (--ipc host): container {id} has its own, and a \
                             shareable one needs root"
                        )));
                    }
                    if donor.host.ipc_mode != "shareable" {
                        return Err(invalid(format!(
                            "can't join IPC of container {id}: non-shareable IPC (hint: use \
                             IpcMode:shareable for the donor container)"
                        )));
                    }
                    let pid = self.pid_of(id, "IPC")?;
                    join.push((LinuxNamespaceType::Ipc, "ipc", pid));
                    // And the donor's /dev/shm, as docker binds it: the same files.
                    let shm = Some(self.shm_dir(id)).filter(|d| is_mount_point(d));
                    if let Some(shm) = shm {
                        let dest = PathBuf::from("/dev/shm");
                        mounts.retain(|m| m.destination() != &dest);
                        mounts.push(super::spec::bind(&shm, "/dev/shm", false));
                    }
                }
            }
        }
        if h.cgroupns_mode == "host" {
            drop_ns.push(LinuxNamespaceType::Cgroup);
        }
        if h.uts_mode == "host" {
            drop_ns.push(LinuxNamespaceType::Uts);
            spec.set_hostname(None);
            spec.set_domainname(None);
        }
        if let Some(namespaces) = linux.namespaces_mut() {
            namespaces.retain(|n| !drop_ns.contains(&n.typ()));
            for n in namespaces.iter_mut() {
                if let Some((_, file, pid)) = join.iter().find(|(t, _, _)| *t == n.typ()) {
                    n.set_path(Some(PathBuf::from(format!("/proc/{pid}/ns/{file}"))));
                }
            }
        }
        spec.set_linux(Some(linux));
        spec.set_mounts(Some(mounts));
        Ok(())
    }

    /// Where a shareable container's /dev/shm lives on the host (docker's `mounts/shm`): a
    /// tmpfs of its own, which the containers that join its IPC namespace bind too.
    fn shm_dir(&self, id: &str) -> PathBuf {
        self.dir(id).join("shm")
    }

    /// `--ipc shareable`: a fresh tmpfs for each run, with the options (and `--shm-size`)
    /// the Spec's /dev/shm has, mounted on the host and bound as the container's /dev/shm.
    /// A rootless berth cannot mount on the host: its /dev/shm stays the container's own.
    fn mount_shareable_shm(&self, rec: &ContainerRecord, mounts: &mut [Mount]) -> Result<()> {
        if super::rootless::active() {
            return Ok(());
        }
        let dest = PathBuf::from("/dev/shm");
        let Some(shm) = mounts.iter_mut().find(|m| m.destination() == &dest) else {
            // A mount of the person's own over /dev/shm: that is what is shared.
            return Ok(());
        };
        if shm.typ().as_deref() != Some("tmpfs") {
            return Ok(());
        }
        let dir = self.shm_dir(&rec.id);
        self.release_shm(&rec.id);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let options = shm.options().clone().unwrap_or_default().join(",");
        let (flags, data) = super::volume::mount_flags(&options).map_err(invalid)?;
        let data = std::ffi::CString::new(data)
            .map_err(|_| invalid("--shm-size: a NUL in /dev/shm's options"))?;
        rustix::mount::mount("shm", &dir, "tmpfs", flags, data.as_c_str())
            .map_err(|e| io_err(&dir)(e.into()))?;
        *shm = super::spec::bind(&dir, "/dev/shm", false);
        Ok(())
    }

    /// Unmounts a shareable container's /dev/shm once it is down (docker's does at the
    /// container's stop): containers that joined it keep their own mount of it.
    pub(super) fn release_shm(&self, id: &str) {
        let dir = self.shm_dir(id);
        if is_mount_point(&dir) {
            let _ = rustix::mount::unmount(&dir, rustix::mount::UnmountFlags::DETACH);
        }
    }

    /// The pid of a running container's init, for joining its namespaces.
    fn pid_of(&self, id: &str, what: &str) -> Result<i32> {
        let target = self.load(id).map_err(|_| {
            invalid(format!(
                "joining the {what} namespace of container {id}: it no longer exists"
            ))
        })?;
        let st = self.state(&target);
        match (st.status, st.pid) {
            (Status::Running | Status::Paused, Some(pid)) => Ok(pid),
            _ => Err(invalid(format!(
                "cannot join {what} of a non running container: {}",
                target.name
            ))),
        }
    }
}

/// The host's /dev/shm and /dev/mqueue for a container that uses the host's IPC, as docker
/// gives them. As root, a fresh mqueue mount in the host's namespace shows the host's queues;
/// a rootless berth may not mount one there (the namespace is the host's), so it binds the
/// host's /dev/mqueue, as podman does, or leaves it out where the host has none mounted.
fn host_ipc_mounts(mounts: &mut Vec<Mount>) {
    for m in mounts.iter_mut() {
        if m.destination() == &PathBuf::from("/dev/shm") {
            *m = super::spec::bind(std::path::Path::new("/dev/shm"), "/dev/shm", false);
        }
    }
    if super::rootless::active() {
        let host_mqueue = std::path::Path::new("/dev/mqueue");
        let dest = PathBuf::from("/dev/mqueue");
        mounts.retain(|m| m.destination() != &dest);
        if is_mount_point(host_mqueue) {
            mounts.push(super::spec::bind(host_mqueue, "/dev/mqueue", false));
        }
    }
}

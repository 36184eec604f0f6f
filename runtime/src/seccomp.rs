//! The Spec's `linux.seccomp` as a BPF program, compiled once per host and installed by every
//! container process as the last step before its command.
//!
//! Compiling: libseccomp builds the program (its syscall tables for every architecture the
//! Spec lists, argument comparisons, a binary-tree search); rules whose syscall libseccomp does
//! not know are left out, as runc leaves them. In front of it goes a short stub of our own that
//! answers ENOSYS, not the default action, for a syscall numbered above every syscall the
//! profile names (runc's rule): a syscall newer than the profile then looks absent, so a libc
//! falls back to an older one instead of failing with EPERM.
//!
//! Caching: the program depends only on the seccomp section, the architecture and libseccomp's
//! version, so it is kept in `/run/berth/seccomp/<sha256>.bpf` (a root-only directory on a
//! tmpfs: once per boot) and the next container with the same profile reads it back (tens of
//! microseconds) instead of compiling (milliseconds). A cache file that is not ours or not
//! well formed is ignored and replaced.
//!
//! Installing: `install` is only system calls (no allocation), so the init and exec children
//! run it after the fork; the kernel takes the program with `seccomp(SECCOMP_SET_MODE_FILTER)`.

use crate::error::{Error, Result};
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};
use libseccomp::{ScmpFilterAttr, ScmpSyscall};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Where compiled programs are kept.
pub const CACHE_DIR: &str = "/run/berth/seccomp";

/// Changes whenever the stub or the cache file's layout changes.
const FORMAT: &[u8] = b"berth-seccomp-2\n";

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const SECCOMP_FILTER_FLAG_TSYNC: u32 = 1;
const SECCOMP_FILTER_FLAG_LOG: u32 = 2;
const SECCOMP_FILTER_FLAG_SPEC_ALLOW: u32 = 4;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;

/// A compiled filter: the program and the flags it is installed with.
#[derive(Clone)]
pub(crate) struct Filter {
    pub program: Vec<libc::sock_filter>,
    pub flags: u32,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Filter({} instructions, flags {:#x})",
            self.program.len(),
            self.flags
        )
    }
}

// The cache file and the state directory's copy: FORMAT, flags, length, then the program
// as the kernel reads it (struct sock_filter in the host's byte order, as libseccomp exports).
impl Filter {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = FORMAT.to_vec();
        out.extend_from_slice(&self.flags.to_ne_bytes());
        out.extend_from_slice(&(self.program.len() as u32).to_ne_bytes());
        for i in &self.program {
            out.extend_from_slice(&i.code.to_ne_bytes());
            out.push(i.jt);
            out.push(i.jf);
            out.extend_from_slice(&i.k.to_ne_bytes());
        }
        out
    }

    fn from_bytes(b: &[u8]) -> Option<Filter> {
        let rest = b.strip_prefix(FORMAT)?;
        let word = |at: usize| -> Option<u32> {
            Some(u32::from_ne_bytes(rest.get(at..at + 4)?.try_into().ok()?))
        };
        let flags = word(0)?;
        let len = word(4)? as usize;
        let program = decode(rest.get(8..)?)?;
        (len > 0 && len <= 4096 && program.len() == len).then_some(Filter { program, flags })
    }
}

/// struct sock_filter values from their bytes in the host's order; `None` unless whole.
fn decode(bytes: &[u8]) -> Option<Vec<libc::sock_filter>> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(8) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

fn invalid(msg: impl std::fmt::Display) -> Error {
    Error::InvalidSpec(format!("seccomp: {msg}"))
}

/// The compiled filter for `s`, from the cache when it is there.
pub(crate) fn compile(s: &LinuxSeccomp) -> Result<Filter> {
    match crate::userns::rootless() {
        // /run/berth is root's: a user's programs go in the user's runtime directory.
        Some(r) => compile_cached(s, &r.run_dir.join("seccomp")),
        None => compile_cached(s, Path::new(CACHE_DIR)),
    }
}

pub(crate) fn compile_cached(s: &LinuxSeccomp, cache: &Path) -> Result<Filter> {
    if s.listener_path().is_some() {
        return Err(invalid("a listener (SCMP_ACT_NOTIFY) is not supported"));
    }
    let key = cache_key(s);
    let file = cache.join(format!("{key}.bpf"));
    if let Some(f) = read_cache(cache, &file) {
        return Ok(f);
    }
    let filter = build(s)?;
    write_cache(cache, &file, &filter);
    Ok(filter)
}

fn cache_key(s: &LinuxSeccomp) -> String {
    let v = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(FORMAT);
    h.update(std::env::consts::ARCH.as_bytes());
    h.update(v.as_bytes());
    h.update(serde_json::to_vec(s).expect("a seccomp section serialises"));
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The directory is used only when it is root's alone (or the caller's, for a non-root
/// caller): anyone else able to write there could hand us a program.
fn trusted_dir(dir: &Path) -> bool {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    std::fs::symlink_metadata(dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == me && m.permissions().mode() & 0o022 == 0)
}

fn read_cache(dir: &Path, file: &Path) -> Option<Filter> {
    if !trusted_dir(dir) {
        return None;
    }
    let mut data = vec![];
    std::fs::File::open(file)
        .ok()?
        .read_to_end(&mut data)
        .ok()?;
    Filter::from_bytes(&data)
}

/// Best effort: a cache that cannot be written costs a compile per container, nothing else.
fn write_cache(dir: &Path, file: &Path, f: &Filter) {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    let _ = std::fs::create_dir_all(parent);
    let _ = std::fs::DirBuilder::new().mode(0o700).create(dir);
    if !trusted_dir(dir) {
        return;
    }
    let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), unique()));
    let ok = std::fs::write(&tmp, f.to_bytes()).and_then(|_| std::fs::rename(&tmp, file));
    if ok.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction> {
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        // runc's default errno for both is EPERM.
        LinuxSeccompAction::ScmpActErrno => {
            ScmpAction::Errno(errno.unwrap_or(libc::EPERM as u32) as i32)
        }
        LinuxSeccompAction::ScmpActTrace => {
            ScmpAction::Trace(errno.unwrap_or(libc::EPERM as u32) as u16)
        }
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(invalid("SCMP_ACT_NOTIFY is not supported"))
        }
    })
}

fn arch(a: Arch) -> Result<ScmpArch> {
    let n = name(&a);
    n.parse::<ScmpArch>()
        .map_err(|_| invalid(format!("unknown architecture {n}")))
}

fn compare(index: usize, op: LinuxSeccompOperator, value: u64, two: u64) -> Result<ScmpArgCompare> {
    if index > 5 {
        return Err(invalid(format!("argument index {index} (0 to 5)")));
    }
    use LinuxSeccompOperator::*;
    let (op, datum) = match op {
        ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        ScmpCmpLt => (ScmpCompareOp::Less, value),
        ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        ScmpCmpEq => (ScmpCompareOp::Equal, value),
        ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        ScmpCmpGt => (ScmpCompareOp::Greater, value),
        // The Spec's value is the mask, valueTwo the datum.
        ScmpCmpMaskedEq => (ScmpCompareOp::MaskedEqual(value), two),
    };
    Ok(ScmpArgCompare::new(index as u32, op, datum))
}

fn seccomp_err(what: &str) -> impl Fn(libseccomp::error::SeccompError) -> Error + '_ {
    move |e| invalid(format!("{what}: {e}"))
}

/// Compiles `s` with libseccomp and puts the ENOSYS stub in front.
fn build(s: &LinuxSeccomp) -> Result<Filter> {
    let default = action(s.default_action(), s.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(seccomp_err("init"))?;
    // The kernel gets the program from us, not from libseccomp: no_new_privs is the Spec's
    // business. Level 2: a binary tree of syscall numbers, fewer comparisons per call.
    ctx.set_ctl_nnp(false).map_err(seccomp_err("nnp"))?;
    ctx.set_filter_attr(ScmpFilterAttr::CtlOptimize, 2)
        .map_err(seccomp_err("optimize"))?;
    let mut arches = vec![ScmpArch::native()];
    for a in s.architectures().iter().flatten() {
        let a = arch(*a)?;
        ctx.add_arch(a).map_err(seccomp_err("add architecture"))?;
        arches.push(a);
    }
    let mut names = vec![];
    for rule in s.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            // libseccomp refuses a rule that repeats the default; it changes nothing.
            continue;
        }
        let conds = rule
            .args()
            .iter()
            .flatten()
            .map(|a| compare(a.index(), a.op(), a.value(), a.value_two().unwrap_or(0)))
            .collect::<Result<Vec<_>>>()?;
        // libseccomp cannot AND two comparisons of one argument: like runc, such a rule
        // becomes one rule per comparison.
        let mut indexes: Vec<usize> = rule.args().iter().flatten().map(|a| a.index()).collect();
        indexes.sort();
        let repeated = indexes.windows(2).any(|w| w[0] == w[1]);
        for n in rule.names() {
            let Ok(nr) = ScmpSyscall::from_name(n) else {
                continue; // unknown to this libseccomp: runc leaves it out too
            };
            names.push(n.as_str());
            let add = |ctx: &mut ScmpFilterContext, c: &[ScmpArgCompare]| {
                if c.is_empty() {
                    ctx.add_rule(act, nr)
                } else {
                    ctx.add_rule_conditional(act, nr, c)
                }
                .map(|_| ())
                .map_err(seccomp_err(n))
            };
            if repeated {
                for c in &conds {
                    add(&mut ctx, std::slice::from_ref(c))?;
                }
            } else {
                add(&mut ctx, &conds)?;
            }
        }
    }
    let program = export(&ctx)?;
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        };
    }
    let blocks_by_default = !matches!(default, ScmpAction::Allow | ScmpAction::Log);
    let mut stub = if blocks_by_default {
        enosys_stub(&arches, &names)
    } else {
        vec![]
    };
    if stub.len() + program.len() > 4096 {
        return Err(invalid(format!(
            "the profile compiles to {} instructions, more than the kernel's 4096",
            stub.len() + program.len()
        )));
    }
    stub.extend(program);
    Ok(Filter {
        program: stub,
        flags,
    })
}

/// libseccomp's BPF, read back through a memfd (its export to memory needs 2.6).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    // SAFETY: memfd_create with a static name; the fd is owned at once.
    let fd = unsafe { libc::memfd_create(c"berth-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::io("memfd_create", std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    ctx.export_bpf(&fd).map_err(seccomp_err("export"))?;
    let mut file = std::fs::File::from(fd);
    let mut bytes = vec![];
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| Error::io("read the compiled filter", e))?;
    decode(&bytes).ok_or_else(|| invalid("libseccomp exported no program"))
}

const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const BPF_JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const BPF_JA: u16 = 0x05; // BPF_JMP | BPF_JA
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
const OFFSET_NR: u32 = 0; // struct seccomp_data: nr, arch, ...
const OFFSET_ARCH: u32 = 4;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The kernel's AUDIT_ARCH value for a libseccomp architecture, where the stub knows it.
fn audit_arch(a: ScmpArch) -> Option<u32> {
    Some(match a {
        ScmpArch::X8664 | ScmpArch::X32 => 0xc000_003e,
        ScmpArch::X86 => 0x4000_0003,
        ScmpArch::Aarch64 => 0xc000_00b7,
        ScmpArch::Arm => 0x4000_0028,
        _ => return None,
    })
}

/// For each architecture: if the syscall number is above the highest one `names` has there,
/// return ENOSYS; otherwise fall through to the program that follows. x32 shares x86-64's
/// AUDIT_ARCH and is told apart by the x32 bit of the number.
fn enosys_stub(arches: &[ScmpArch], names: &[&str]) -> Vec<libc::sock_filter> {
    let max_on = |a: ScmpArch| {
        names
            .iter()
            .filter_map(|n| ScmpSyscall::from_name_by_arch(n, a).ok())
            .map(i32::from)
            .filter(|nr| *nr >= 0)
            .max()
            .map(|nr| nr as u32)
    };
    // (audit arch, highest plain syscall, highest x32 syscall)
    let mut checks: Vec<(u32, Option<u32>, Option<u32>)> = vec![];
    let mut seen = vec![];
    for a in arches {
        let a = if *a == ScmpArch::Native {
            ScmpArch::native()
        } else {
            *a
        };
        if seen.contains(&a) {
            continue;
        }
        seen.push(a);
        let Some(audit) = audit_arch(a) else { continue };
        let max = max_on(a);
        let entry = match checks.iter_mut().find(|c| c.0 == audit) {
            Some(e) => e,
            None => {
                checks.push((audit, None, None));
                checks.last_mut().unwrap()
            }
        };
        if a == ScmpArch::X32 {
            entry.2 = max.map(|m| m | X32_SYSCALL_BIT);
        } else {
            entry.1 = max;
        }
    }
    checks.retain(|c| c.1.is_some() || c.2.is_some());
    if checks.is_empty() {
        return vec![];
    }
    // Each architecture's block jumps to `enosys` (the last instruction) or past it (the
    // program that follows). Blocks are built back to front so jump distances are known.
    let mut blocks: Vec<Vec<libc::sock_filter>> = vec![];
    for (audit, plain, x32) in &checks {
        let mut b = vec![insn(BPF_LD_W_ABS, 0, 0, OFFSET_NR)];
        // Targets are written as markers and resolved below: 0xfe = enosys, 0xff = allow.
        match (plain, x32) {
            (Some(p), Some(x)) => {
                b.push(insn(BPF_JGE_K, 0, 1, X32_SYSCALL_BIT));
                b.push(insn(BPF_JGT_K, 0xfe, 0xff, *x));
                b.push(insn(BPF_JGT_K, 0xfe, 0xff, *p));
            }
            (Some(p), None) => {
                // Without x32 in the filter its calls are refused as a bad architecture.
                b.push(insn(BPF_JGE_K, 0xff, 0, X32_SYSCALL_BIT));
                b.push(insn(BPF_JGT_K, 0xfe, 0xff, *p));
            }
            (None, Some(x)) => {
                b.push(insn(BPF_JGE_K, 0, 0xff, X32_SYSCALL_BIT));
                b.push(insn(BPF_JGT_K, 0xfe, 0xff, *x));
            }
            (None, None) => unreachable!(),
        }
        blocks.push(vec![insn(BPF_JEQ_K, 0, b.len() as u8, *audit)]);
        blocks.last_mut().unwrap().extend(b);
    }
    // Layout: ld arch; block...; ja allow; enosys: ret ERRNO(ENOSYS); (program).
    let mut out = vec![insn(BPF_LD_W_ABS, 0, 0, OFFSET_ARCH)];
    for b in blocks {
        out.extend(b);
    }
    out.push(insn(BPF_JA, 0, 0, 1));
    out.push(insn(
        BPF_RET_K,
        0,
        0,
        SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
    ));
    let len = out.len();
    let (enosys, allow) = (len - 1, len);
    for (i, ins) in out.iter_mut().enumerate() {
        if ins.code != BPF_JGT_K && ins.code != BPF_JGE_K {
            continue;
        }
        for j in [&mut ins.jt, &mut ins.jf] {
            match *j {
                0xfe => *j = (enosys - i - 1) as u8,
                0xff => *j = (allow - i - 1) as u8,
                _ => {}
            }
        }
    }
    out
}

/// Installs `f` on the calling thread (all threads with TSYNC). Needs no_new_privs or
/// CAP_SYS_ADMIN. Only system calls: safe between fork and exec.
pub(crate) fn install(f: &Filter) -> std::io::Result<()> {
    let prog = libc::sock_fprog {
        len: f.program.len() as u16,
        filter: f.program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: a valid sock_fprog that outlives the call; the kernel copies the program.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            f.flags as libc::c_ulong,
            &prog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Writes `f` where `exec` finds it (the container's state directory).
pub(crate) fn save(f: &Filter, path: &Path) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
    file.write_all(&f.to_bytes())
        .map_err(|e| Error::io(format!("write {}", path.display()), e))
}

/// The filter `save` wrote, if any.
pub(crate) fn load(path: &Path) -> Result<Option<Filter>> {
    match std::fs::read(path) {
        Ok(b) => Filter::from_bytes(&b)
            .map(Some)
            .ok_or_else(|| Error::Setup(format!("{} is not a seccomp program", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
    }
}

/// The file name `save` uses in a state directory.
pub(crate) const STATE_FILE: &str = "seccomp.bpf";

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    /// Forks a child that installs `f` and reports what three raw syscalls returned.
    fn errnos_under(f: &Filter) -> (i32, i32, i32) {
        let (r, w) = crate::sys::pipe().unwrap();
        let pid = crate::sys::fork().unwrap();
        if pid == 0 {
            // SAFETY: raw system calls only, then _exit.
            unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                if install(f).is_err() {
                    libc::_exit(99);
                }
                let errno = |r: libc::c_long| {
                    if r < 0 {
                        *libc::__errno_location()
                    } else {
                        0
                    }
                };
                let out = [
                    errno(libc::syscall(libc::SYS_getpid)),
                    errno(libc::syscall(
                        libc::SYS_mkdir,
                        c"/nonexistent/x".as_ptr(),
                        0o700,
                    )),
                    errno(libc::syscall(400)),
                ];
                let bytes: Vec<u8> = out.iter().flat_map(|e| e.to_le_bytes()).collect();
                libc::write(
                    std::os::fd::AsRawFd::as_raw_fd(&w),
                    bytes.as_ptr().cast(),
                    12,
                );
                libc::_exit(0);
            }
        }
        drop(w);
        let mut buf = vec![];
        std::fs::File::from(r).read_to_end(&mut buf).unwrap();
        let status = crate::sys::wait_child(pid, 0).unwrap();
        assert_eq!(
            status,
            Some((0, None)),
            "the child could not install the filter"
        );
        let e = |i: usize| i32::from_le_bytes(buf[i * 4..i * 4 + 4].try_into().unwrap());
        (e(0), e(1), e(2))
    }

    #[test]
    fn default_action_below_the_highest_syscall_and_enosys_above_it() {
        let cache = tempfile::tempdir().unwrap();
        let s = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
                "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
                "syscalls":[{"names":["exit_group","exit","getpid","write","no_such_call"],
                             "action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let f = compile_cached(&s, cache.path()).unwrap();
        // getpid allowed; mkdir (83, below exit_group's 231) EPERM; 400 ENOSYS.
        assert_eq!(errnos_under(&f), (0, libc::EPERM, libc::ENOSYS));

        // The second compile is the cache's: same program, and a damaged file is replaced.
        let file = cache.path().join(format!("{}.bpf", cache_key(&s)));
        assert!(file.exists());
        let again = compile_cached(&s, cache.path()).unwrap();
        assert_eq!(again.to_bytes(), f.to_bytes());
        std::fs::write(&file, b"garbage").unwrap();
        let rebuilt = compile_cached(&s, cache.path()).unwrap();
        assert_eq!(rebuilt.to_bytes(), f.to_bytes());
        assert_eq!(std::fs::read(&file).unwrap(), f.to_bytes());
    }

    #[test]
    fn errno_rules_and_argument_conditions() {
        let cache = tempfile::tempdir().unwrap();
        // Allow by default; mkdir gets EACCES unless its mode is 0o700; 400 stays absent
        // (ENOSYS from the kernel itself: no stub when the default allows).
        let s = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW",
                "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13,
                             "args":[{"index":1,"value":448,"op":"SCMP_CMP_NE"}]},
                            {"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
        );
        let f = compile_cached(&s, cache.path()).unwrap();
        assert_eq!(errnos_under(&f), (libc::EPERM, libc::ENOENT, libc::ENOSYS));
    }

    #[test]
    fn bad_sections_are_refused() {
        let cache = tempfile::tempdir().unwrap();
        let s = profile(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#);
        assert!(compile_cached(&s, cache.path()).is_err());
        let s = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],
                "action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        let e = compile_cached(&s, cache.path()).unwrap_err().to_string();
        assert!(e.contains("argument index 6"), "{e}");
    }
}

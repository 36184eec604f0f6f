//! The devices cgroup on cgroup v2, where it is an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE)
//! attached to the container's cgroup: the Spec's device rules become one program that the
//! kernel runs at every open and mknod of a device node (v1 hosts take the rules as
//! `devices.allow`/`devices.deny` lines instead, see `cgroup`).
//!
//! The rules keep v1's meaning: they are read in order and the last one that matches a
//! device decides (an allow matches an access it wholly covers, a deny any access it
//! touches); a device no rule matches is refused. The program tests them last to
//! first, so the first match it finds is the one that decides.

use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Insn {
    code: u8,
    regs: u8, // dst in the low nibble, src in the high one
    off: i16,
    imm: i32,
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const MOV32_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// struct bpf_cgroup_dev_ctx: access_type (access << 16 | type), major, minor.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

fn access_bits(access: &str) -> Result<i32> {
    let mut bits = 0;
    for c in access.chars() {
        bits |= match c {
            'm' => ACC_MKNOD,
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            _ => return Err(Error::InvalidSpec(format!("device access {access:?}"))),
        };
    }
    Ok(bits)
}

/// The program for `rules` (registers: r2 type, r3 access, r4 major, r5 minor).
pub(crate) fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND32_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        // Each test jumps to the next block when the device does not match the rule.
        let mut tests = vec![];
        match rule.typ().unwrap_or_default() {
            LinuxDeviceType::A => {}
            LinuxDeviceType::B => tests.push(insn(JNE_K, 2, 0, 0, DEV_BLOCK)),
            LinuxDeviceType::C | LinuxDeviceType::U => tests.push(insn(JNE_K, 2, 0, 0, DEV_CHAR)),
            // Fifos are not devices the cgroup sees.
            LinuxDeviceType::P => continue,
        }
        let access = access_bits(rule.access().as_deref().unwrap_or("rwm"))?;
        if access != ACC_MKNOD | ACC_READ | ACC_WRITE {
            tests.push(insn(MOV32_X, 1, 3, 0, 0));
            if rule.allow() {
                // An allow matches when everything asked for is in the rule's access.
                tests.push(insn(AND32_K, 1, 0, 0, !access & 7));
                tests.push(insn(JNE_K, 1, 0, 0, 0));
            } else {
                // A deny takes its access away (v1): it matches when any of it is asked.
                tests.push(insn(AND32_K, 1, 0, 0, access));
                tests.push(insn(JEQ_K, 1, 0, 0, 0));
            }
        }
        if let Some(major) = rule.major().filter(|m| *m >= 0) {
            tests.push(insn(JNE_K, 4, 0, 0, major as i32));
        }
        if let Some(minor) = rule.minor().filter(|m| *m >= 0) {
            tests.push(insn(JNE_K, 5, 0, 0, minor as i32));
        }
        let len = tests.len() + 2;
        for (i, t) in tests.iter_mut().enumerate() {
            if t.code == JNE_K || t.code == JEQ_K {
                t.off = (len - i - 1) as i16;
            }
        }
        let matches_all = tests.is_empty();
        p.extend(tests);
        p.push(insn(MOV64_K, 0, 0, 0, rule.allow() as i32));
        p.push(insn(EXIT, 0, 0, 0, 0));
        if matches_all {
            // Every device stops here: the verifier refuses code after it (unreachable).
            return Ok(p);
        }
    }
    p.push(insn(MOV64_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    Ok(p)
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The first fields of `union bpf_attr` for BPF_PROG_LOAD.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The fields of `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
#[derive(Default)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a repr(C) prefix of union bpf_attr, passed with its own size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>() as u32,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r)
}

/// Loads the program for `rules` and attaches it to the cgroup v2 directory `dir`. The
/// attachment lives as long as the cgroup; the descriptors are closed on return.
pub(crate) fn attach(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let prog = program(rules)?;
    let mut log = vec![0u8; 4096];
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"berth_device");
    let attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: c"Apache-2.0".as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name: name,
        ..ProgLoad::default()
    };
    let fd = bpf(BPF_PROG_LOAD, &attr).map_err(|e| {
        let text = String::from_utf8_lossy(&log);
        let text = text.trim_end_matches('\0').trim();
        Error::Cgroup(format!("load the devices program: {e} {text}"))
    })?;
    // SAFETY: a new fd the kernel gave us.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cgroup = std::fs::File::open(dir)
        .map_err(|e| Error::Cgroup(format!("open {}: {e}", dir.display())))?;
    let attr = ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..ProgAttach::default()
    };
    bpf(BPF_PROG_ATTACH, &attr).map_err(|e| {
        Error::Cgroup(format!(
            "attach the devices program to {}: {e}",
            dir.display()
        ))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroup;

    fn rule(
        allow: bool,
        typ: Option<LinuxDeviceType>,
        mm: Option<(i64, i64)>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(allow);
        r.set_typ(typ);
        r.set_major(mm.map(|m| m.0));
        r.set_minor(mm.map(|m| m.1));
        r.set_access(Some(access.into()));
        r
    }

    /// In a child moved into a new cgroup v2 directory holding the program for `rules`:
    /// the errno of opening each path read-write (0 when it opened).
    fn open_errnos(rules: &[LinuxDeviceCgroup], paths: &[&str]) -> Vec<i32> {
        let layout = crate::cgroup::Layout::detect().unwrap();
        let (mountpoint, _) = layout
            .v2
            .expect("the devices program needs a cgroup2 mount (pure v2 or hybrid)");
        let dir = mountpoint.join(format!(
            "berth-devtest-{}-{}",
            std::process::id(),
            paths.len()
        ));
        std::fs::create_dir(&dir).unwrap();
        attach(&dir, rules).unwrap();
        let (r, w) = crate::sys::pipe().unwrap();
        let procs = std::ffi::CString::new(dir.join("cgroup.procs").as_os_str().as_encoded_bytes())
            .unwrap();
        let cpaths: Vec<std::ffi::CString> = paths
            .iter()
            .map(|p| std::ffi::CString::new(*p).unwrap())
            .collect();
        let pid = crate::sys::fork().unwrap();
        if pid == 0 {
            // SAFETY: raw system calls only, then _exit.
            unsafe {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    libc::_exit(99);
                }
                let mut out = vec![];
                for p in &cpaths {
                    let f = libc::open(p.as_ptr(), libc::O_RDWR);
                    out.extend_from_slice(
                        &(if f < 0 { *libc::__errno_location() } else { 0 }).to_ne_bytes(),
                    );
                }
                libc::write(w.as_raw_fd(), out.as_ptr().cast(), out.len());
                libc::_exit(0);
            }
        }
        drop(w);
        let mut buf = vec![];
        std::io::Read::read_to_end(&mut std::fs::File::from(r), &mut buf).unwrap();
        let status = crate::sys::wait_child(pid, 0).unwrap();
        let _ = std::fs::remove_dir(&dir);
        assert_eq!(
            status,
            Some((0, None)),
            "the child could not join {}",
            dir.display()
        );
        buf.chunks_exact(4)
            .map(|c| i32::from_ne_bytes(c.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn root_v2_device_program_keeps_v1_rule_order() {
        use LinuxDeviceType::{A, C};
        // docker's shape: deny everything, then allow a few; the last match decides.
        let rules = [
            rule(false, Some(A), None, "rwm"),
            rule(true, Some(C), Some((1, 3)), "rwm"),
            rule(true, Some(C), Some((1, 5)), "r"),
            rule(true, Some(C), Some((1, 9)), "rwm"),
            rule(false, Some(C), Some((1, 9)), "w"),
        ];
        let errnos = open_errnos(
            &rules,
            &["/dev/null", "/dev/zero", "/dev/full", "/dev/urandom"],
        );
        // null allowed; zero only for reading (we ask rw); full never; urandom's write denied.
        assert_eq!(errnos, [0, libc::EPERM, libc::EPERM, libc::EPERM]);
        let all = [rule(true, None, None, "rwm")];
        assert_eq!(open_errnos(&all, &["/dev/zero"]), [0]);
    }

    #[test]
    fn program_shape() {
        let p = program(&[rule(true, Some(LinuxDeviceType::C), Some((1, 3)), "rw")]).unwrap();
        // 6 loads, then: type test, 3 access insns, major, minor, result, exit; then deny.
        assert_eq!(p.len(), 6 + 8 + 2);
        assert_eq!(p[6], insn(JNE_K, 2, 0, 7, DEV_CHAR));
        assert_eq!(p[9], insn(JNE_K, 1, 0, 4, 0));
        assert!(program(&[rule(true, None, None, "rwx")]).is_err());
    }
}

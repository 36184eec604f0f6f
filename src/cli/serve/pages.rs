//! Letting go of the code pages that only start-up touched, and of those a burst of requests
//! touched once the server is idle again.
//!
//! One `berth` binary holds the CLI, the runtime and the registry. Parsing the command line,
//! reading the config, opening the store and binding the listener reach code and read-only
//! data that serving never runs again, and the kernel maps each such page (and, by fault-around,
//! up to 64 KiB around it, or the whole large folio the page cache holds it in) into the process
//! for good: about 4 MiB of a serving registry's resident set. Serving a few requests scatters
//! as much again over the 25 MiB of code. [`release`] drops the process's mappings of the
//! read-only segments of its executable and shared libraries; the pages stay in the page cache,
//! and those that serving needs are mapped again on their first use (a minor fault each).
//! Writable segments (data, relocated pointers, the heap) are never touched, so no state is
//! lost: a read-only private file mapping always reads back the file's bytes. It also hands the
//! allocator's free memory back to the kernel (`malloc_trim`).

use std::ffi::{c_int, c_void, CStr};

/// Drops this process's mappings of every read-only loaded segment of its executable and of the
/// shared libraries loaded from a path (not the kernel's vDSO), and returns the allocator's free
/// pages to the kernel. Returns the bytes of code and read-only data advised.
pub fn release() -> usize {
    let mut advised = 0usize;
    // SAFETY: the callback only reads the program headers the loader hands it and passes
    // page-aligned ranges inside read-only loaded segments to madvise.
    unsafe {
        libc::dl_iterate_phdr(Some(each_object), (&mut advised as *mut usize).cast());
    }
    // SAFETY: malloc_trim only gives the free pages of the allocator's arenas back.
    unsafe {
        libc::malloc_trim(0);
    }
    advised
}

/// How many one-second ticks without a new request make the server idle.
const IDLE_TICKS: u32 = 5;

/// Runs [`release`] each time the server has gone five seconds (to within one) without a new
/// request after having served one: the pages a burst of requests mapped leave the resident set
/// of an idle server, and the next request maps what it needs again (minor faults, well under a
/// millisecond). `requests` reads the count of requests received so far. Runs until dropped.
pub async fn when_idle(requests: impl Fn() -> u64) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut idle = Idle::new(requests());
    loop {
        tick.tick().await;
        if idle.tick(requests()) {
            let advised = release();
            tracing::debug!(
                "idle: released the mappings of {} KiB of code",
                advised >> 10
            );
        }
    }
}

/// Decides, tick by tick, when the server has become idle.
struct Idle {
    /// The request count at the last tick.
    seen: u64,
    /// Ticks since the count last moved.
    quiet: u32,
    /// Released since the count last moved (start-up's release counts).
    released: bool,
}

impl Idle {
    fn new(requests: u64) -> Idle {
        Idle {
            seen: requests,
            quiet: 0,
            released: true,
        }
    }

    /// One tick with the current request count: true when it is time to release.
    fn tick(&mut self, requests: u64) -> bool {
        if requests != self.seen {
            (self.seen, self.quiet, self.released) = (requests, 0, false);
            return false;
        }
        self.quiet = self.quiet.saturating_add(1);
        if self.released || self.quiet < IDLE_TICKS {
            return false;
        }
        self.released = true;
        true
    }
}

unsafe extern "C" fn each_object(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut c_void,
) -> c_int {
    // SAFETY: dl_iterate_phdr passes a valid info and our own `data` for the call's duration.
    let (info, advised) = unsafe { (&*info, &mut *data.cast::<usize>()) };
    let name = if info.dlpi_name.is_null() {
        c""
    } else {
        // SAFETY: a non-null dlpi_name is a NUL-terminated string owned by the loader.
        unsafe { CStr::from_ptr(info.dlpi_name) }
    };
    // The executable comes first with an empty name; libraries have their path; the vDSO's
    // name has no '/'.
    let is_file = name.is_empty() || name.to_bytes().contains(&b'/');
    if !is_file || info.dlpi_phdr.is_null() {
        return 0;
    }
    let page = page_size();
    for i in 0..usize::from(info.dlpi_phnum) {
        // SAFETY: dlpi_phdr points at dlpi_phnum program headers.
        let header = unsafe { &*info.dlpi_phdr.add(i) };
        if header.p_type != libc::PT_LOAD || header.p_flags & libc::PF_W != 0 {
            continue;
        }
        let start = info.dlpi_addr as usize + header.p_vaddr as usize;
        let end = start + header.p_memsz as usize;
        // Only whole pages inside the segment: a page shared with a writable neighbour is kept.
        let (start, end) = (start.next_multiple_of(page), end / page * page);
        if end > start {
            // SAFETY: [start, end) lies in a read-only private file mapping of a loaded object;
            // MADV_DONTNEED only unmaps its pages, which fault back in with the same bytes.
            if unsafe { libc::madvise(start as *mut c_void, end - start, libc::MADV_DONTNEED) } == 0
            {
                *advised += end - start;
            }
        }
    }
    0
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resident_file_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("RssFile:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn released_pages_leave_the_resident_set_and_come_back_intact() {
        let before = resident_file_kib();
        let advised = release();
        let after = resident_file_kib();
        assert!(advised > 1 << 20, "advised only {advised} bytes");
        assert!(
            after < before,
            "file-backed resident memory went from {before} KiB to {after} KiB"
        );
        // Code and read-only data still work after their pages were dropped: run some.
        let text = format!(
            "{:?}",
            std::collections::BTreeMap::from([(1, "one"), (2, "two")])
        );
        assert_eq!(text, r#"{1: "one", 2: "two"}"#);
        assert_eq!(release(), advised, "the same segments each time");
    }

    #[test]
    fn idle_releases_once_after_five_quiet_ticks_and_again_after_new_requests() {
        let mut idle = Idle::new(7);
        // Start-up's release was just done: nothing to do while nothing is asked.
        assert!((0..20).all(|_| !idle.tick(7)));
        // Requests during three ticks, then quiet: released at the fifth quiet tick only.
        assert!(!idle.tick(8) && !idle.tick(9) && !idle.tick(12));
        let quiet: Vec<bool> = (0..10).map(|_| idle.tick(12)).collect();
        assert_eq!(quiet.iter().position(|r| *r), Some(IDLE_TICKS as usize - 1));
        assert_eq!(quiet.iter().filter(|r| **r).count(), 1);
        // A request in the middle of the quiet time starts it again.
        assert!(!idle.tick(13));
        assert!((0..IDLE_TICKS - 2).all(|_| !idle.tick(13)));
        assert!(!idle.tick(14));
        assert!((0..IDLE_TICKS - 1).all(|_| !idle.tick(14)));
        assert!(idle.tick(14));
    }
}

//! Binding the workers of a parallel read to CPUs of their own ([`ReaderBuilder::bind_cpus`]).
//!
//! Workers sleep now and then in the kernel (on the process's mapping lock, or for a page being
//! mapped by another thread). Waking, a thread is often put on the CPU of the thread that woke
//! it, next to a busy worker, and waits there until the scheduler moves it: on a 2-CPU host
//! `--stats -j2` spent from 0 to 15 ms of a 50 ms run so. A worker bound to a CPU of its own
//! runs as soon as it is woken.
//!
//! [`ReaderBuilder::bind_cpus`]: crate::reader::ReaderBuilder::bind_cpus

/// `n` distinct CPUs this process may run on, the calling thread's current one first; `None`
/// if fewer than `n` are allowed (or where binding is not supported).
pub(super) fn plan(n: usize) -> Option<Vec<usize>> {
    imp::plan(n)
}

/// Binds the calling thread (a worker that ends with the read) to `cpu`.
pub(super) fn bind_this_thread(cpu: usize) {
    let _ = imp::bind(cpu);
}

/// Binds the calling thread to `cpu` until the returned guard is dropped, which restores the
/// CPUs it could run on before. `None` if it could not be bound.
pub(super) fn bind_calling_thread(cpu: usize) -> Option<Restore> {
    let before = imp::allowed()?;
    imp::bind(cpu).then_some(Restore(before))
}

/// Restores a thread's CPUs when dropped ([`bind_calling_thread`]).
pub(super) struct Restore(imp::CpuSet);

impl Drop for Restore {
    fn drop(&mut self) {
        imp::set(&self.0);
    }
}

#[cfg(target_os = "linux")]
mod imp {
    pub(super) type CpuSet = libc::cpu_set_t;

    /// The CPUs the calling thread may run on.
    pub(super) fn allowed() -> Option<CpuSet> {
        // SAFETY: an all-zero cpu_set_t is a valid empty set, and sched_getaffinity writes at
        // most `size_of::<cpu_set_t>()` bytes into it.
        unsafe {
            let mut set: CpuSet = std::mem::zeroed();
            (libc::sched_getaffinity(0, std::mem::size_of::<CpuSet>(), &mut set) == 0)
                .then_some(set)
        }
    }

    pub(super) fn set(set: &CpuSet) -> bool {
        // SAFETY: `set` is a valid cpu_set_t of the size given; pid 0 is the calling thread.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<CpuSet>(), set) == 0 }
    }

    pub(super) fn bind(cpu: usize) -> bool {
        if cpu >= libc::CPU_SETSIZE as usize {
            return false;
        }
        // SAFETY: an all-zero cpu_set_t is a valid empty set; `cpu` is below CPU_SETSIZE.
        let one = unsafe {
            let mut s: CpuSet = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut s);
            s
        };
        set(&one)
    }

    pub(super) fn plan(n: usize) -> Option<Vec<usize>> {
        let allowed = allowed()?;
        // SAFETY: sched_getcpu has no preconditions.
        let current = unsafe { libc::sched_getcpu() };
        let mut cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `c` is below CPU_SETSIZE and `allowed` a valid set.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &allowed) })
            .collect();
        if cpus.len() < n {
            return None;
        }
        if let Some(i) = usize::try_from(current)
            .ok()
            .and_then(|cur| cpus.iter().position(|&c| c == cur))
        {
            cpus.rotate_left(i);
        }
        cpus.truncate(n);
        Some(cpus)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(super) type CpuSet = ();

    pub(super) fn allowed() -> Option<CpuSet> {
        None
    }

    pub(super) fn set(_: &CpuSet) -> bool {
        false
    }

    pub(super) fn bind(_: usize) -> bool {
        false
    }

    pub(super) fn plan(_: usize) -> Option<Vec<usize>> {
        None
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn plan_gives_distinct_allowed_cpus_current_first_and_binding_is_restored() {
        let before = imp::allowed().unwrap();
        // SAFETY: `before` is a valid set.
        let count = unsafe { libc::CPU_COUNT(&before) } as usize;
        assert!(plan(count + 1).is_none(), "more CPUs than allowed");
        let cpus = plan(count).unwrap();
        let mut sorted = cpus.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), count, "distinct: {cpus:?}");
        let last = *cpus.last().unwrap();
        {
            let _guard = bind_calling_thread(last).unwrap();
            // SAFETY: sched_getcpu has no preconditions.
            assert_eq!(unsafe { libc::sched_getcpu() } as usize, last);
            let now = imp::allowed().unwrap();
            // SAFETY: valid sets.
            assert_eq!(unsafe { libc::CPU_COUNT(&now) }, 1);
        }
        let after = imp::allowed().unwrap();
        // SAFETY: valid sets.
        assert_eq!(unsafe { libc::CPU_COUNT(&after) } as usize, count);
        std::thread::spawn(move || {
            bind_this_thread(last);
            // SAFETY: as above.
            assert_eq!(unsafe { libc::sched_getcpu() } as usize, last);
        })
        .join()
        .unwrap();
    }
}

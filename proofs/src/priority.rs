//! Thread priorities: sealing work yields the cores to what is time-critical
//! (a PoSt in its deadline) and PC1's side work to its labeling.

/// Lowers the calling thread's scheduling priority (nice 10; Linux, best effort).
pub fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        #[allow(unsafe_code)]
        // SAFETY: gettid and setpriority only read their integer arguments; on Linux
        // PRIO_PROCESS with a thread id sets that thread's nice value.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, 10);
        }
    }
}

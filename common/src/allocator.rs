//! The memory allocator every Feedline binary uses: jemalloc, set up by [`crate::allocator!`].
//!
//! Why not glibc's malloc: after 10 000 connections closed, glibc kept every byte they had
//! used (`bench/connections`: +273 MB resident for good); jemalloc's background thread hands
//! freed pages back within about a second even when the process is idle afterwards.

pub use tikv_jemallocator::Jemalloc;

/// Read by jemalloc at start-up: purge freed pages after 1 s, from a background thread.
pub const MALLOC_CONF: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// Installs jemalloc as the binary's global allocator, with [`MALLOC_CONF`]. Once, in each
/// `main.rs`.
#[macro_export]
macro_rules! allocator {
    () => {
        #[global_allocator]
        static ALLOCATOR: $crate::allocator::Jemalloc = $crate::allocator::Jemalloc;

        #[allow(non_upper_case_globals)]
        #[export_name = "_rjem_malloc_conf"]
        pub static malloc_conf: &[u8] = $crate::allocator::MALLOC_CONF;
    };
}

//! The process's memory allocator (binary only). Small blocks — nearly every allocation a request makes —
//! come from mimalloc: with glibc's malloc, allocation and freeing took about a quarter of the CPU of a
//! stateless `tools/call`. Blocks of [`LARGE`] and more (in practice argon2id's 19 MiB working memory) come
//! from the system allocator, which maps each on its own and unmaps it when freed, so the memory of a
//! password check goes back to the OS as soon as the check ends.
use std::alloc::{GlobalAlloc, Layout, System};

use mimalloc::MiMalloc;

/// Blocks this large or larger come from the system allocator.
const LARGE: usize = 1 << 20;

pub struct Allocator;

// SAFETY: every block is freed (or resized) by the allocator that made it: `dealloc` and `realloc` get the
// layout the block was allocated with, and its size picks the same allocator as at allocation. A resize
// across the threshold allocates with the other allocator, copies, and frees the old block with its own.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees for `layout` are passed on unchanged.
        unsafe { if layout.size() >= LARGE { System.alloc(layout) } else { MiMalloc.alloc(layout) } }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe { if layout.size() >= LARGE { System.alloc_zeroed(layout) } else { MiMalloc.alloc_zeroed(layout) } }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated with `layout`, hence by the allocator its size selects.
        unsafe { if layout.size() >= LARGE { System.dealloc(ptr, layout) } else { MiMalloc.dealloc(ptr, layout) } }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same-side resizes go to the allocator that owns `ptr`. Otherwise the new layout is valid
        // (the caller guarantees `new_size` with this alignment does not overflow), the copy covers the
        // bytes both blocks hold, and the old block is freed by its own allocator.
        unsafe {
            match (layout.size() >= LARGE, new_size >= LARGE) {
                (false, false) => MiMalloc.realloc(ptr, layout, new_size),
                (true, true) => System.realloc(ptr, layout, new_size),
                _ => {
                    let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                    let new_ptr = self.alloc(new_layout);
                    if !new_ptr.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    new_ptr
                }
            }
        }
    }
}

/// glibc raises its mmap threshold after a large block is freed, after which large blocks come from
/// per-thread heaps and stay resident (one 19 MiB argon2 block per blocking thread that ever hashed:
/// hundreds of MB). A fixed 1 MiB threshold keeps each large block in its own mapping, returned when freed.
pub fn return_large_blocks_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters, under glibc's arena lock (tokio's threads may run).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE as libc::c_int);
    }
}

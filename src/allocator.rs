//! The process's global allocator: the system's (glibc's `malloc`), with
//! over-aligned blocks served from an ordinary `malloc` block instead of
//! `posix_memalign`.
//!
//! tract allocates every tensor aligned to the CPU's vector width (32 or 64
//! bytes), above what `malloc` guarantees (16), so each one went through
//! glibc's `posix_memalign`, which allocates a larger chunk and splits the
//! aligned part out of it. For a small model that is most of the engine's
//! allocation work: callgrind measured about 1,900 instructions per request
//! in `posix_memalign` and its frees for iris, of about 48,000 in all, and the
//! split-off fragments made later large allocations consolidate the heap
//! (`malloc_consolidate`, about 600 more).
//!
//! Here a block of alignment `A` (16 < `A` ≤ [`MAX_ALIGN`]) is `malloc(size + A)`
//! with the returned pointer moved up to the next multiple of `A`; the word
//! just below it holds the `malloc` pointer, which `dealloc` frees. `malloc`'s
//! own pointers are at least word-aligned, so the move is at least one word
//! and the header always fits. Every other layout goes to [`System`]
//! unchanged. The choice depends only on the alignment, which a `Layout` keeps
//! through `realloc`, so a block is always freed by the path that made it.

use std::alloc::{GlobalAlloc, Layout, System};

/// Alignments above `malloc`'s own guarantee up to this one take the
/// over-allocation path; larger ones (page-aligned buffers) stay with
/// `posix_memalign`, where padding by the alignment would waste more.
pub const MAX_ALIGN: usize = 64;

/// What glibc's `malloc` guarantees on 64-bit targets (`2 * size_t`).
const MALLOC_ALIGN: usize = 16;

const WORD: usize = size_of::<*mut u8>();

/// See the module documentation.
#[derive(Debug)]
pub struct Allocator;

fn padded(layout: Layout) -> bool {
    layout.align() > MALLOC_ALIGN && layout.align() <= MAX_ALIGN
}

/// The `malloc` layout for a padded block of `layout`: `None` on overflow.
fn outer(layout: Layout) -> Option<Layout> {
    Layout::from_size_align(layout.size().checked_add(layout.align())?, WORD).ok()
}

/// Moves `base` (a `malloc` pointer) up to `align` and records it below.
///
/// # Safety
/// `base` is null or the start of a block of at least `size + align` bytes.
unsafe fn place(base: *mut u8, align: usize) -> *mut u8 {
    if base.is_null() {
        return base;
    }
    // At least one word up (base is word-aligned), at most `align`.
    let offset = align - (base as usize & (align - 1));
    // SAFETY: offset ≤ align, inside the block; the header word is at
    // offset - WORD ≥ 0, word-aligned because base and offset are.
    unsafe {
        let user = base.add(offset);
        user.cast::<*mut u8>().sub(1).write(base);
        user
    }
}

/// The `malloc` pointer of a padded block.
///
/// # Safety
/// `ptr` was returned by [`place`].
unsafe fn base(ptr: *mut u8) -> *mut u8 {
    // SAFETY: `place` wrote the header word just below `ptr`.
    unsafe { ptr.cast::<*mut u8>().sub(1).read() }
}

// SAFETY: padded blocks are `size + align` bytes from `System`, the returned
// pointer is aligned and has `size` bytes after it inside that block, and
// `dealloc` frees the very pointer `System` returned, with the layout it was
// allocated with. Other layouts are `System`'s own calls.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !padded(layout) {
            // SAFETY: the caller's contract, passed on.
            return unsafe { System.alloc(layout) };
        }
        let Some(outer) = outer(layout) else { return std::ptr::null_mut() };
        // SAFETY: `outer` is not zero-sized; `place` gets a block of size + align bytes or null.
        unsafe { place(System.alloc(outer), layout.align()) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !padded(layout) {
            // SAFETY: the caller's contract, passed on.
            return unsafe { System.alloc_zeroed(layout) };
        }
        let Some(outer) = outer(layout) else { return std::ptr::null_mut() };
        // SAFETY: as in `alloc`; the header word is in the padding, not in the caller's bytes.
        unsafe { place(System.alloc_zeroed(outer), layout.align()) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !padded(layout) {
            // SAFETY: the caller's contract: `ptr` came from `System` with this layout.
            return unsafe { System.dealloc(ptr, layout) };
        }
        // SAFETY: `ptr` came from `place` (same alignment, so the same path),
        // whose header holds the pointer `System` returned for `outer`, a
        // layout that was valid when the block was allocated (no panic here:
        // an allocator must not unwind).
        unsafe {
            let outer = Layout::from_size_align_unchecked(layout.size() + layout.align(), WORD);
            System.dealloc(base(ptr), outer)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !padded(layout) {
            // SAFETY: the caller's contract, passed on.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // `malloc`'s realloc could move the block to a different offset
        // from the alignment: allocate, copy, free.
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else { return std::ptr::null_mut() };
        // SAFETY: `new` has `new_size` bytes and `ptr` has `layout.size()`;
        // they are distinct live blocks; `ptr` is freed with its own layout.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills a block with a pattern, reads it back, frees it.
    fn exercise(a: &Allocator, layout: Layout, zeroed: bool) {
        // SAFETY: a non-zero layout; the block is used within its size and freed once with it.
        unsafe {
            let p = if zeroed { a.alloc_zeroed(layout) } else { a.alloc(layout) };
            assert!(!p.is_null(), "{layout:?}");
            assert_eq!(p as usize % layout.align(), 0, "{layout:?}");
            let s = std::slice::from_raw_parts_mut(p, layout.size());
            if zeroed {
                assert!(s.iter().all(|&b| b == 0), "{layout:?}");
            }
            for (i, b) in s.iter_mut().enumerate() {
                *b = i as u8;
            }
            assert!(s.iter().enumerate().all(|(i, &b)| b == i as u8));
            a.dealloc(p, layout);
        }
    }

    #[test]
    fn every_alignment_and_size_is_aligned_writable_and_freed() {
        let a = Allocator;
        for align in [1, 2, 8, 16, 32, 64, 128, 4096] {
            // (GlobalAlloc does not take zero-sized layouts.)
            for size in [1, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 4095, 4096, 1 << 20] {
                let layout = Layout::from_size_align(size, align).unwrap();
                exercise(&a, layout, false);
                exercise(&a, layout, true);
            }
        }
    }

    #[test]
    fn padded_blocks_record_their_malloc_pointer_within_the_padding() {
        // tract's vector widths take the padded path; malloc's own and page alignment do not.
        assert!(padded(Layout::from_size_align(12, 32).unwrap()));
        assert!(padded(Layout::from_size_align(12, 64).unwrap()));
        assert!(!padded(Layout::from_size_align(12, 16).unwrap()));
        assert!(!padded(Layout::from_size_align(12, 4096).unwrap()));
        let a = Allocator;
        for align in [32, 64] {
            let layout = Layout::from_size_align(48, align).unwrap();
            // SAFETY: as in `exercise`.
            unsafe {
                let p = a.alloc(layout);
                let b = base(p);
                let offset = p as usize - b as usize;
                assert!((WORD..=align).contains(&offset), "offset {offset} for alignment {align}");
                a.dealloc(p, layout);
            }
        }
    }

    #[test]
    fn realloc_keeps_contents_and_alignment_growing_and_shrinking() {
        let a = Allocator;
        for align in [8, 16, 32, 64, 4096] {
            let layout = Layout::from_size_align(40, align).unwrap();
            // SAFETY: every access is inside the current block's size; each block is freed once.
            unsafe {
                let p = a.alloc(layout);
                for i in 0..40 {
                    p.add(i).write(i as u8 + 1);
                }
                let grown = a.realloc(p, layout, 10_000);
                assert_eq!(grown as usize % align, 0);
                assert!((0..40).all(|i| grown.add(i).read() == i as u8 + 1));
                grown.add(9_999).write(7);
                let big = Layout::from_size_align(10_000, align).unwrap();
                let shrunk = a.realloc(grown, big, 24);
                assert_eq!(shrunk as usize % align, 0);
                assert!((0..24).all(|i| shrunk.add(i).read() == i as u8 + 1));
                a.dealloc(shrunk, Layout::from_size_align(24, align).unwrap());
            }
        }
    }

    #[test]
    fn an_impossible_size_is_refused_not_wrapped() {
        let a = Allocator;
        // The largest size a 32-aligned Layout allows: padding it would pass isize::MAX.
        let layout = Layout::from_size_align(isize::MAX as usize - 31, 32).unwrap();
        assert!(outer(layout).is_none());
        // SAFETY: a non-zero layout; nothing is allocated.
        assert!(unsafe { a.alloc(layout) }.is_null());
    }
}

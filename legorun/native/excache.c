/*
 * The ExCache hit path: a TLB-fill hook that Unicorn calls directly (UC_TLB_VIRTUAL).
 *
 * The ExCache is one flat "physical" slot region mapped in Unicorn; this hook translates a
 * guest virtual page to its slot by scanning the tags of the page's set (sets indexed by
 * virtual page number, as in LegoOS). A hit never leaves C. A miss calls back into Python,
 * which fetches the line from the memory manager and returns the slot it chose.
 *
 * Dirty tracking also stays here: a clean line is filled without write permission, so the
 * first store to it comes back through this hook, which marks the line dirty and grants
 * write. Reference bits feed the approximate-LRU (clock) policy.
 */
#include <stdbool.h>
#include <stdint.h>

#define PAGE_SHIFT 12

/* uc_prot / uc_mem_type values from unicorn.h: the hook runs without its headers. */
enum { PROT_R = 1, PROT_W = 2, PROT_X = 4 };
enum { MEM_READ = 16, MEM_WRITE = 17, MEM_FETCH = 18 };

/* Slot flags: the low three bits are the line's protection (PROT_*). */
enum { LINE_DIRTY = 1 << 3, LINE_REFERENCED = 1 << 4 };

#define EMPTY_TAG UINT64_MAX
#define DIRECT_PAGE (-2) /* excache.py DIRECT_PAGE */
/* UC_CTL_WRITE(UC_CTL_TLB_FLUSH, 0): type 11, write direction (1 << 30). */
#define UC_CTL_TLB_FLUSH_WRITE ((1u << 30) | 11u)

typedef struct {
    uint64_t paddr;
    uint32_t perms;
} uc_tlb_entry;

typedef int64_t (*miss_fn)(uint64_t vaddr, int32_t type);
typedef int (*uc_ctl_fn)(void *uc, uint32_t control, ...);

/* Shared with Python (legorun/cache/excache.py mirrors this layout with ctypes). */
typedef struct {
    uint64_t slot_base;    /* Unicorn address of slot 0 */
    uint64_t set_mask;     /* number of sets - 1 (a power of two) */
    uint64_t assoc;
    uint64_t *tags;        /* [nslots] virtual page number held by each slot, or EMPTY_TAG */
    uint8_t *flags;        /* [nslots] protection | LINE_* */
    miss_fn miss;          /* Python: returns the slot now holding the page, or -1 to fault */
    uc_ctl_fn uc_ctl;
    uint64_t flush_period; /* flush QEMU's TLB every so many fills so that it can grow */
    uint64_t fills_since_flush;
    /* statistics */
    uint64_t fills;        /* calls of this hook */
    uint64_t fill_hits;    /* fills satisfied without Python */
    uint64_t dirty_marks;  /* first stores to clean lines */
} excache_t;

/* Flush QEMU's TLB every flush_period fills, so that it can grow (see DESIGN.md). */
static inline void count_fill(excache_t *c, void *uc)
{
    if (c->flush_period && ++c->fills_since_flush >= c->flush_period) {
        c->fills_since_flush = 0;
        c->uc_ctl(uc, UC_CTL_TLB_FLUSH_WRITE);
    }
}

bool excache_tlb_fill(void *uc, uint64_t vaddr, int32_t type, uc_tlb_entry *result,
                      void *user_data)
{
    excache_t *c = user_data;
    uint64_t vpn = vaddr >> PAGE_SHIFT;
    uint64_t first = (vpn & c->set_mask) * c->assoc;
    int64_t slot = -1;

    c->fills++;
    for (uint64_t way = 0; way < c->assoc; way++) {
        if (c->tags[first + way] == vpn) {
            slot = (int64_t)(first + way);
            break;
        }
    }
    if (slot >= 0) {
        c->fill_hits++;
    } else {
        slot = c->miss(vaddr, type);
        if (slot == -1)
            return false;
        if (slot < -1) {
            /* Direct memory (MAP_SHARED pages, no line): DIRECT_PAGE - (ppn << 3 | prot). */
            uint64_t direct = (uint64_t)(DIRECT_PAGE - slot);
            result->paddr = (direct >> 3) << PAGE_SHIFT;
            result->perms = (uint32_t)(direct & (PROT_R | PROT_W | PROT_X));
            count_fill(c, uc);
            return true;
        }
    }

    uint8_t flags = c->flags[slot];
    uint32_t prot = flags & (PROT_R | PROT_W | PROT_X);
    if (type == MEM_WRITE && (prot & PROT_W) && !(flags & LINE_DIRTY)) {
        flags |= LINE_DIRTY;
        c->dirty_marks++;
    }
    c->flags[slot] = flags | LINE_REFERENCED;
    /* Until a line is dirty, leave write permission out so the first store returns here. */
    result->perms = (flags & LINE_DIRTY) ? prot : (prot & ~(uint32_t)PROT_W);
    result->paddr = c->slot_base + ((uint64_t)slot << PAGE_SHIFT);
    count_fill(c, uc);
    return true;
}

/* Every way of the set that holds `vpn`, or -1: the Python side's lookup for uaccess. */
int64_t excache_lookup(const excache_t *c, uint64_t vpn)
{
    uint64_t first = (vpn & c->set_mask) * c->assoc;
    for (uint64_t way = 0; way < c->assoc; way++)
        if (c->tags[first + way] == vpn)
            return (int64_t)(first + way);
    return -1;
}

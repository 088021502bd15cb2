/*
 * The --trace-mem hooks: every executed instruction and data access, written in the text
 * format of valgrind's lackey (--tool=lackey --trace-mem=yes):
 *
 *     I  0040113a,4        an instruction fetch: address, length
 *      L 004c50f0,8        a load
 *      S 7ffd23a0,8        a store
 *      M 004c50f8,4        a load and a store of the same address and size by one instruction
 *
 * Unicorn calls these hooks directly, tens of millions of times a second, so the lines are
 * formatted by hand into a large buffer that goes to the file with write(2) when it is full.
 *
 * Unicorn reports accesses as QEMU performs them; lackey reports them as VEX describes them.
 * These rules bring the two together, all applied to the accesses of one instruction:
 *  - QEMU splits a wide access (a 16-byte SSE operand, an 80-bit x87 value) into quadword
 *    parts; VEX has one access per operand, of at most 16 bytes. A same-kind access that
 *    starts where the previous whole-quadword access ended is the next part of it, and
 *    extends it up to that width.
 *  - lackey turns a load immediately followed by a store of the same address and size into
 *    one "modify". So an access is held back until the next event shows whether it continues.
 *  - VEX makes a locked read-modify-write (lock add, xchg, lock xadd, ...; not cmpxchg) a load
 *    followed by a compare-and-swap, which lackey shows as " L" then " M"; QEMU reports it as
 *    a plain load and store. Whether an instruction is one is decided by Python from its
 *    bytes, once per instruction address (a small direct-mapped cache remembers it).
 *
 * Unicorn runs in virtual-TLB mode over the ExCache's slot region, so a memory hook sees the
 * "physical" address of the slot that holds the page; the slot's tag gives the guest's
 * virtual page back.
 *
 * An optional filter limits the trace to instructions inside a set of address ranges (and
 * their data accesses). A block hook classifies each translation block as inside, outside or
 * straddling the ranges, so that only straddling blocks pay for a per-access check.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* uc_mem_type values and the RIP register id from unicorn.h: the hooks run without its
 * headers. */
enum { MEM_READ = 16, MEM_WRITE = 17 };
enum { UC_X86_REG_RIP = 41 };

#define PAGE_SHIFT 12
#define PAGE_MASK ((UINT64_C(1) << PAGE_SHIFT) - 1)
#define BUFFER_SIZE (1u << 20)
#define LONGEST_LINE 48 /* "I  " + 16 hex digits + "," + 20 decimal digits + "\n" */
#define ATOMIC_CACHE_SIZE 4096 /* a power of two */
#define NO_ADDRESS UINT64_MAX
#define WIDEST_ACCESS 16 /* bytes: an SSE operand */

typedef int (*uc_reg_read_fn)(void *uc, int regid, void *value);
/* Python: 1 if the instruction at address (size bytes) is a locked read-modify-write. */
typedef int32_t (*classify_fn)(uint64_t address, uint32_t size);

typedef enum { EVENT_NONE, EVENT_LOAD, EVENT_STORE, EVENT_MODIFY } event_kind;

/* Where the current translation block lies with respect to the filter ranges. */
typedef enum { BLOCK_INSIDE, BLOCK_OUTSIDE, BLOCK_STRADDLES } block_place;

typedef struct {
    uint64_t start, end; /* [start, end) */
} address_range;

/* The data access held back until the next event (see above). */
typedef struct {
    event_kind kind; /* EVENT_NONE: nothing held */
    uint64_t addr;
    uint64_t size;
    uint64_t stored; /* EVENT_MODIFY: bytes of the store seen so far (it may come in parts) */
} pending_access;

typedef struct {
    uint64_t address; /* NO_ADDRESS: empty */
    uint32_t size;
    int32_t atomic;
} atomic_entry;

typedef struct {
    int fd;
    int error; /* the first write(2) errno; nothing more is written after one */

    /* The ExCache's slots, to turn a slot address back into the guest's virtual address. */
    uint64_t slot_base;
    uint64_t slot_count;
    const uint64_t *tags; /* virtual page number held by each slot */

    /* The filter: sorted, disjoint ranges; none means everything is traced. */
    address_range *ranges;
    size_t nranges;
    block_place place;
    uc_reg_read_fn reg_read;

    /* The instruction being traced, and its access held back. */
    uint64_t insn_addr;
    uint32_t insn_size;
    pending_access pending;
    classify_fn classify;
    atomic_entry atomic_cache[ATOMIC_CACHE_SIZE];

    size_t used;
    char buffer[BUFFER_SIZE];
} memtrace;

/* ------------------------------------------------------------------ output */

static void flush_buffer(memtrace *t)
{
    size_t done = 0;
    while (done < t->used && !t->error) {
        ssize_t n = write(t->fd, t->buffer + done, t->used - done);
        if (n < 0) {
            if (errno != EINTR)
                t->error = errno;
            continue;
        }
        done += (size_t)n;
    }
    t->used = 0;
}

static const char HEX[] = "0123456789abcdef";

/* "%08lx,%lu\n" */
static char *format_access(char *out, uint64_t addr, uint64_t size)
{
    int digits = 8;
    while (digits < 16 && (addr >> (4 * digits)) != 0)
        digits++;
    for (int i = digits - 1; i >= 0; i--)
        *out++ = HEX[(addr >> (4 * i)) & 0xf];
    *out++ = ',';
    char decimal[20];
    int n = 0;
    do {
        decimal[n++] = (char)('0' + size % 10);
        size /= 10;
    } while (size);
    while (n)
        *out++ = decimal[--n];
    *out++ = '\n';
    return out;
}

/* prefix is "I  ", " L ", " S " or " M " */
static void emit(memtrace *t, const char prefix[3], uint64_t addr, uint64_t size)
{
    if (t->used + LONGEST_LINE > BUFFER_SIZE)
        flush_buffer(t);
    char *out = t->buffer + t->used;
    memcpy(out, prefix, 3);
    out = format_access(out + 3, addr, size);
    t->used = (size_t)(out - t->buffer);
}

static bool insn_is_atomic(memtrace *t)
{
    atomic_entry *e = &t->atomic_cache[(t->insn_addr ^ (t->insn_addr >> 12))
                                       & (ATOMIC_CACHE_SIZE - 1)];
    if (e->address != t->insn_addr || e->size != t->insn_size) {
        e->address = t->insn_addr;
        e->size = t->insn_size;
        e->atomic = t->classify(t->insn_addr, t->insn_size);
    }
    return e->atomic != 0;
}

static void emit_pending(memtrace *t)
{
    pending_access *p = &t->pending;
    switch (p->kind) {
    case EVENT_NONE:
        return;
    case EVENT_LOAD:
        emit(t, " L ", p->addr, p->size);
        break;
    case EVENT_STORE:
        emit(t, " S ", p->addr, p->size);
        break;
    case EVENT_MODIFY:
        if (p->stored < p->size) { /* a narrower store: not one modify after all */
            emit(t, " L ", p->addr, p->size);
            emit(t, " S ", p->addr, p->stored);
            break;
        }
        if (insn_is_atomic(t))
            emit(t, " L ", p->addr, p->size);
        emit(t, " M ", p->addr, p->size);
        break;
    }
    p->kind = EVENT_NONE;
}

/* Adds one access of the current instruction, merging it into the held one if it continues
 * it (see the rules above). */
static void add_access(memtrace *t, event_kind kind, uint64_t addr, uint64_t size)
{
    pending_access *p = &t->pending;
    if (p->kind == kind && p->addr + p->size == addr && p->size % 8 == 0
        && p->size + size <= WIDEST_ACCESS) {
        p->size += size; /* the next part of a split wide access */
        return;
    }
    if (kind == EVENT_STORE && p->kind == EVENT_LOAD && p->addr == addr && size <= p->size) {
        p->kind = EVENT_MODIFY;
        p->stored = size;
        return;
    }
    if (kind == EVENT_STORE && p->kind == EVENT_MODIFY && p->stored < p->size
        && p->addr + p->stored == addr && p->stored % 8 == 0 && p->stored + size <= p->size) {
        p->stored += size; /* the next part of the store of a split modify */
        return;
    }
    emit_pending(t);
    p->kind = kind;
    p->addr = addr;
    p->size = size;
}

/* ------------------------------------------------------------------ the filter */

static bool in_ranges(const memtrace *t, uint64_t addr)
{
    size_t low = 0, high = t->nranges;
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        if (addr < t->ranges[mid].start)
            high = mid;
        else if (addr >= t->ranges[mid].end)
            low = mid + 1;
        else
            return true;
    }
    return false;
}

static block_place place_of(const memtrace *t, uint64_t start, uint64_t size)
{
    if (size == 0) /* Unicorn could not tell the block's size: check each access */
        return BLOCK_STRADDLES;
    uint64_t end = start + size;
    for (size_t i = 0; i < t->nranges; i++) {
        const address_range *r = &t->ranges[i];
        if (r->start <= start && end <= r->end)
            return BLOCK_INSIDE;
        if (start < r->end && r->start < end)
            return BLOCK_STRADDLES;
    }
    return BLOCK_OUTSIDE;
}

/* Is the instruction making this data access inside the ranges? Unicorn keeps RIP exact
 * for memory hooks. */
static bool access_traced(memtrace *t, void *uc)
{
    if (t->nranges == 0 || t->place == BLOCK_INSIDE)
        return true;
    if (t->place == BLOCK_OUTSIDE)
        return false;
    uint64_t rip = 0;
    t->reg_read(uc, UC_X86_REG_RIP, &rip);
    return in_ranges(t, rip);
}

/* ------------------------------------------------------------------ the hooks */

static uint64_t guest_address(const memtrace *t, uint64_t address)
{
    uint64_t slot = (address - t->slot_base) >> PAGE_SHIFT;
    if (address < t->slot_base || slot >= t->slot_count)
        return address; /* not in the slot region: already virtual */
    return (t->tags[slot] << PAGE_SHIFT) | (address & PAGE_MASK);
}

/* UC_HOOK_BLOCK over every address; installed only with a filter. */
void memtrace_block(void *uc, uint64_t address, uint32_t size, void *user_data)
{
    (void)uc;
    memtrace *t = user_data;
    t->place = place_of(t, address, size);
}

/* UC_HOOK_CODE: limited by Unicorn to the one filter range if there is exactly one. */
void memtrace_instruction(void *uc, uint64_t address, uint32_t size, void *user_data)
{
    (void)uc;
    memtrace *t = user_data;
    if (t->nranges > 1) {
        if (t->place == BLOCK_OUTSIDE)
            return;
        if (t->place == BLOCK_STRADDLES && !in_ranges(t, address))
            return;
    }
    emit_pending(t);
    t->insn_addr = address;
    t->insn_size = size;
    emit(t, "I  ", address, size);
}

/* UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE over every address. */
void memtrace_access(void *uc, int type, uint64_t address, int size, int64_t value,
                     void *user_data)
{
    (void)value;
    memtrace *t = user_data;
    if (!access_traced(t, uc))
        return;
    add_access(t, type == MEM_WRITE ? EVENT_STORE : EVENT_LOAD, guest_address(t, address),
               (uint64_t)size);
}

/* ------------------------------------------------------------------ life cycle */

/* A trace writing to fd (which stays the caller's), limited to nranges ranges given as
 * [start, end) pairs, sorted and disjoint; NULL if out of memory. The ExCache's tags must
 * outlive the trace. */
memtrace *memtrace_open(int fd, const uint64_t *bounds, size_t nranges, void *reg_read,
                        uint64_t slot_base, uint64_t slot_count, const uint64_t *tags,
                        void *classify)
{
    memtrace *t = malloc(sizeof *t);
    if (t == NULL)
        return NULL;
    memset(t, 0, offsetof(memtrace, buffer));
    for (size_t i = 0; i < ATOMIC_CACHE_SIZE; i++)
        t->atomic_cache[i].address = NO_ADDRESS;
    t->classify = (classify_fn)classify;
    t->fd = fd;
    t->reg_read = (uc_reg_read_fn)reg_read;
    t->slot_base = slot_base;
    t->slot_count = slot_count;
    t->tags = tags;
    t->place = BLOCK_INSIDE;
    if (nranges) {
        t->ranges = malloc(nranges * sizeof *t->ranges);
        if (t->ranges == NULL) {
            free(t);
            return NULL;
        }
        for (size_t i = 0; i < nranges; i++) {
            t->ranges[i].start = bounds[2 * i];
            t->ranges[i].end = bounds[2 * i + 1];
        }
        t->nranges = nranges;
    }
    return t;
}

/* Write what is buffered (before a fork: the child must not inherit it and write it again);
 * returns 0 or the errno of a failed write. */
int memtrace_flush(memtrace *t)
{
    flush_buffer(t);
    return t->error;
}

/* Write what is buffered and free the trace; returns 0 or the errno of a failed write. */
int memtrace_close(memtrace *t)
{
    emit_pending(t);
    flush_buffer(t);
    int error = t->error;
    free(t->ranges);
    free(t);
    return error;
}

/*
 * Instruction counting for the modelled clock: a UC_HOOK_BLOCK hook that Unicorn calls
 * directly at the start of every executed translation block.
 *
 * Unicorn gives a block's address and size in bytes, not its instruction count, so the
 * count of each block is kept in an open-addressing table keyed by (address, size). A block
 * seen for the first time calls back into Python once, which decodes its bytes; every later
 * execution is a table lookup in C. A per-instruction code hook would cost ~9 ns per
 * instruction; this costs one lookup per block.
 *
 * The hook also keeps the address of the running block, so that events raised while it runs
 * (ExCache misses, syscalls) can be attributed to code, and calls a tick function every so
 * many instructions so that samplers see time pass during pure computation.
 *
 * With several guest threads it also ends the running thread's time slice: once the count
 * reaches `preempt_at` it asks Unicorn to stop (after the current block), so a thread
 * switch happens after a fixed number of instructions and a run can be replayed exactly.
 */
#include <stdint.h>
#include <stdlib.h>

#define EMPTY_ADDRESS UINT64_MAX /* no canonical x86-64 block starts there */
#define INITIAL_CAPACITY 4096    /* a power of two; a static hello runs ~1,000 blocks */

typedef struct {
    uint64_t address;
    uint32_t size;  /* bytes, as Unicorn reports them */
    uint32_t count; /* instructions */
} block_t;

typedef uint32_t (*decode_fn)(uint64_t address, uint32_t size);
typedef void (*tick_fn)(void);
typedef int (*emu_stop_fn)(void *uc);

/* Shared with Python (legorun/processor/icount.py mirrors this layout with ctypes). */
typedef struct {
    uint64_t instructions; /* executed so far */
    uint64_t block;        /* address of the block now running (0 before the first) */
    uint64_t next_tick;    /* call tick once instructions reach this; UINT64_MAX: never */
    decode_fn decode;      /* Python: the instruction count of a block not yet in the table */
    tick_fn tick;
    block_t *blocks;       /* owned by C: icount_release frees it */
    uint64_t capacity;     /* a power of two, or 0 before the first block */
    uint64_t used;
    uint64_t decodes;      /* calls of decode (distinct blocks seen) */
    uint64_t preempt_at;   /* stop the CPU once instructions reach this; UINT64_MAX: never */
    emu_stop_fn emu_stop;  /* uc_emu_stop, passed in: this file does not link Unicorn */
    uint64_t preemptions;  /* stops requested through preempt_at */
} icount_t;

static inline uint64_t block_hash(uint64_t address)
{
    /* Block addresses are dense and distinct, so their low bits nearly index the table on
     * their own; folding in higher bits spreads code that lies further apart. A cheaper hash
     * than a multiplication matters: this runs once per executed block. */
    return address ^ (address >> 7);
}

static inline block_t *find_slot(block_t *blocks, uint64_t capacity, uint64_t address,
                                 uint32_t size)
{
    uint64_t mask = capacity - 1;
    for (uint64_t i = block_hash(address) & mask;; i = (i + 1) & mask) {
        block_t *b = &blocks[i];
        if (b->address == address ? b->size == size : b->address == EMPTY_ADDRESS)
            return b;
    }
}

/* Doubles the table (or creates it); on allocation failure keeps the old one. */
static int grow(icount_t *c)
{
    uint64_t capacity = c->capacity ? c->capacity * 2 : INITIAL_CAPACITY;
    block_t *blocks = malloc(capacity * sizeof *blocks);
    if (!blocks)
        return 0;
    for (uint64_t i = 0; i < capacity; i++)
        blocks[i].address = EMPTY_ADDRESS;
    for (uint64_t i = 0; i < c->capacity; i++) {
        block_t *old = &c->blocks[i];
        if (old->address != EMPTY_ADDRESS)
            *find_slot(blocks, capacity, old->address, old->size) = *old;
    }
    free(c->blocks);
    c->blocks = blocks;
    c->capacity = capacity;
    return 1;
}

/* The slow path, once per distinct block: decode it in Python and remember its count. */
static __attribute__((noinline)) uint32_t new_block(icount_t *c, uint64_t address,
                                                     uint32_t size)
{
    uint32_t count = c->decode(address, size);
    c->decodes++;
    /* Keep the load at most one half so that probes stay short. */
    if (2 * (c->used + 1) > c->capacity && !grow(c))
        return count; /* out of memory: still correct, only decoded again next time */
    block_t *b = find_slot(c->blocks, c->capacity, address, size);
    b->address = address;
    b->size = size;
    b->count = count;
    c->used++;
    return count;
}

void icount_block(void *uc, uint64_t address, uint32_t size, void *user_data)
{
    icount_t *c = user_data;
    uint32_t count;
    c->block = address;
    if (c->capacity) {
        block_t *b = find_slot(c->blocks, c->capacity, address, size);
        count = b->address == address ? b->count : new_block(c, address, size);
    } else {
        count = new_block(c, address, size);
    }
    c->instructions += count;
    if (c->instructions >= c->next_tick)
        c->tick();
    if (c->instructions >= c->preempt_at) {
        c->preempt_at = UINT64_MAX;
        c->preemptions++;
        c->emu_stop(uc);
    }
}

/* Free the table (when the counter goes away); the next block starts a new one. */
void icount_release(icount_t *c)
{
    free(c->blocks);
    c->blocks = NULL;
    c->capacity = 0;
    c->used = 0;
}

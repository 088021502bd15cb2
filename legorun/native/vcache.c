/*
 * --cache-sim: the processor's virtually indexed, virtually tagged caches, simulated the way
 * cachegrind (valgrind's cg_sim.c) simulates them, fed directly by Unicorn hooks.
 *
 * Three caches: L1 instruction (I1), L1 data (D1) and a unified last level (LL) behind both.
 * Each is set-associative with true LRU replacement, write-allocate, sets chosen by simple bit
 * selection of the line ("block") number, and the block number itself used as the tag. As in
 * cachegrind:
 *  - an access that straddles two lines looks up both and counts as one access, which misses
 *    if either line missed;
 *  - LL is consulted only when L1 misses, with the same address and size;
 *  - every executed instruction is one I1 access of its own bytes (Ir), and its data accesses
 *    are D1 reads (Dr) and writes (Dw), simulated in program order: an instruction's fetch,
 *    then its data accesses, then the next instruction's fetch.
 *
 * Instructions are seen a translation block at a time: a per-instruction code hook costs
 * Unicorn ~14 ns an instruction before it does anything, ten times cachegrind's whole cost. A
 * block hook runs once per executed block; the first time a block is seen, Python decodes it
 * into instructions (address and length) and C keeps the list. A QEMU block always runs to
 * its end unless the guest faults, so Ir is counted per block execution. The block's fetches
 * are simulated lazily: a data access reads RIP (Unicorn keeps it exact for memory hooks),
 * the fetches of the instructions up to that one are simulated first, then the access; the
 * rest when the next block starts. Nothing but fetches touches I1, so a fetch within the line
 * where the latest fetch ended hits its set's most recently used way and changes nothing: it
 * is not looked up. Within a block that is known when it is decoded; across blocks it is
 * checked.
 *
 * Unicorn reports data accesses as QEMU performs them, cachegrind counts them as VEX describes
 * them. Two rules, applied to the accesses of one instruction, bring the two together:
 *  - QEMU splits a wide operand (a 16-byte SSE value, an 80-bit x87 value, cmpxchg16b) into
 *    quadword parts; VEX has one access per operand. A same-kind access that starts where a
 *    whole-quadword access ended is the next part of it and extends it (up to the smallest
 *    line size, which is also cachegrind's cap for wide accesses).
 *  - cachegrind counts a read immediately followed by a write of the same address and size
 *    by one instruction (add [m], r; cmpxchg) as one "modify", and a modify as a read only
 *    (cg_main.c: Ev_Dm is logged by the Dr helper; the write is not counted). So the
 *    accesses of an instruction are held back until the next instruction starts (or the run
 *    ends), when the whole sequence is known.
 *  - VEX makes a locked read-modify-write (lock add, xchg with memory, lock xadd; not
 *    cmpxchg) a load followed by a compare-and-swap, that is a read and a modify: two reads
 *    of the operand, the second a sure hit. QEMU reports a plain read and write. Python marks
 *    such instructions when it decodes their block.
 *
 * Unicorn runs in virtual-TLB mode over the ExCache's slot region, so a memory hook sees the
 * "physical" address of the slot that holds the page; the slot's tag gives the guest's virtual
 * page back, and the caches are indexed and tagged by that virtual address.
 *
 * Counts are kept per instruction (a dense array of records, indexed by an open-addressing
 * hash on the instruction's address), the records Python turns into cachegrind's per-line
 * output. Python also charges two legorun events, ExCache misses and RPCs, which land on the
 * instruction they belong to: a miss raised by a data access is followed at once by that
 * access's hook, which takes the charge; anything else (a syscall's RPCs, fetching code for a
 * new block) goes to the last instruction run before the next block starts.
 *
 * Nothing here enters Python on an instruction or an access: only a block seen for the first
 * time is decoded there.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EMPTY_TAG UINT64_MAX     /* no access names this line (block numbers are addr >> 4+) */
#define EMPTY_ADDRESS UINT64_MAX /* no canonical x86-64 code starts there */
#define NO_RECORD UINT32_MAX
#define INITIAL_CAPACITY 4096    /* a power of two; every table doubles when it must grow */
#define MAX_PENDING 16           /* accesses held per instruction before they are simulated */
#define LONGEST_INSTRUCTION 15
#define QUADWORD 8
#define PAGE_SHIFT 12
#define PAGE_OFFSET_MASK ((1ull << PAGE_SHIFT) - 1)

enum { UC_X86_REG_RIP = 41 }; /* from unicorn's x86.h: the hooks run without its headers */

/* The events of one instruction, in the order of cachegrind's "events:" line plus legorun's. */
enum {
    EV_IR, EV_I1MR, EV_ILMR,
    EV_DR, EV_D1MR, EV_DLMR,
    EV_DW, EV_D1MW, EV_DLMW,
    EV_EXCACHE_MISS, EV_RPC,
    EV_COUNT
};

/* Shared with Python (legorun/cache/vcache.py mirrors this layout with ctypes). */
typedef struct {
    uint64_t address; /* of the instruction */
    uint32_t length;  /* its bytes */
    uint32_t unused;
    uint64_t counts[EV_COUNT];
} vcache_record;

/* Per-instruction flags from the decoder. */
enum { LOCKED_UPDATE = 1 };

/* Python: decode the block of `size` bytes at `address` into instruction lengths and flags
 * (room for `size` of each); returns how many instructions, 0 if the code cannot be read. */
typedef uint32_t (*decode_fn)(uint64_t address, uint32_t size, uint8_t *lengths,
                              uint8_t *flags);
typedef int (*reg_read_fn)(void *uc, int regid, void *value);

typedef struct {
    uint64_t *tags;      /* [sets * assoc]: each set's block numbers, most recently used first */
    uint64_t set_mask;   /* sets - 1 (sets is a power of two) */
    uint32_t assoc;
    uint32_t line_bits;  /* log2(line size) */
} cache;

typedef struct {
    uint64_t address;    /* EMPTY_ADDRESS for a free slot */
    uint64_t executions;
    uint32_t size;       /* bytes: a block is known by its address and size */
    uint32_t count;      /* instructions */
    uint32_t first;      /* index of its first instruction in block_instructions */
} block;

/* One instruction of a block: what running it needs, without touching its record. */
typedef struct {
    uint64_t address;
    uint32_t record;
    uint8_t length;
    uint8_t fetch; /* 0: its fetch is sure to hit the line the previous one ended in */
    uint8_t flags; /* LOCKED_UPDATE */
} block_instruction;

typedef enum { ACCESS_READ, ACCESS_WRITE } access_kind;

typedef struct {
    uint64_t address;
    uint32_t size;
    access_kind kind;
} access;

typedef struct {
    cache i1, d1, ll;
    uint32_t max_access; /* the smallest line size: no access straddles more than two lines */

    decode_fn decode;
    reg_read_fn reg_read;

    /* The ExCache's slots, to turn a slot address back into the guest's virtual address. */
    uint64_t slot_base;
    uint64_t slot_count;
    const uint64_t *tags; /* virtual page number held by each slot */

    vcache_record *records; /* dense, in order of first execution */
    uint32_t nrecords, records_capacity;
    uint32_t *record_index; /* open addressing on the address: record number + 1, 0 = free */
    uint64_t index_capacity;

    block *blocks; /* open addressing on (address, size), at most half full */
    uint64_t blocks_capacity, nblocks;
    block_instruction *block_instructions; /* each block's instructions, contiguous */
    uint32_t ninstructions, instructions_capacity;

    /* The running block: its instructions, and how many of them have started. */
    uint32_t block_first, block_count, started;
    uint32_t current; /* record of the running instruction, or NO_RECORD before the first */
    uint64_t current_address;
    uint8_t current_flags;
    uint64_t last_fetch_line; /* I1 line holding the last byte of the latest fetch */

    access pending[MAX_PENDING]; /* the current instruction's data accesses, not yet simulated */
    uint32_t npending;
    uint64_t deferred[EV_COUNT]; /* charges waiting for the instruction they belong to */

    int failed;   /* out of memory: nothing more is counted */
    int finished; /* the run is over: Ir is final, hooks do nothing */
} vcache;

/* ------------------------------------------------------------------ one cache */

static uint32_t log2_exact(uint64_t value)
{
    uint32_t bits = 0;
    while ((1ull << bits) < value)
        bits++;
    return bits;
}

static int cache_init(cache *c, uint64_t size, uint32_t assoc, uint32_t line_size)
{
    uint64_t lines = size / line_size;
    c->tags = malloc(sizeof(uint64_t) * lines);
    if (c->tags == NULL)
        return -1;
    for (uint64_t i = 0; i < lines; i++)
        c->tags[i] = EMPTY_TAG;
    c->set_mask = lines / assoc - 1;
    c->assoc = assoc;
    c->line_bits = log2_exact(line_size);
    return 0;
}

/* Look `line` up in its set and make it the most recently used; returns 1 on a miss (the
 * least recently used line makes room), 0 on a hit. */
static inline int set_ref_is_miss(cache *c, uint64_t line)
{
    uint64_t *set = &c->tags[(line & c->set_mask) * c->assoc];
    if (set[0] == line)
        return 0;
    uint32_t i = 1;
    while (i < c->assoc && set[i] != line)
        i++;
    int miss = i == c->assoc;
    if (miss)
        i--;
    for (; i > 0; i--)
        set[i] = set[i - 1];
    set[0] = line;
    return miss;
}

/* One access of `size` bytes (no more than a line): both lines are looked up when it
 * straddles two, and it misses if either does. */
static inline int ref_is_miss(cache *c, uint64_t address, uint32_t size)
{
    uint64_t first = address >> c->line_bits;
    uint64_t last = (address + size - 1) >> c->line_bits;
    if (first == last)
        return set_ref_is_miss(c, first);
    int miss = set_ref_is_miss(c, first); /* both: each lookup updates the LRU order */
    return set_ref_is_miss(c, last) | miss;
}

/* An L1 access and, when it misses, the LL access behind it. */
static inline void hierarchy_ref(cache *l1, cache *ll, uint64_t address, uint32_t size,
                                 uint64_t *l1_miss, uint64_t *ll_miss)
{
    if (ref_is_miss(l1, address, size)) {
        (*l1_miss)++;
        if (ref_is_miss(ll, address, size))
            (*ll_miss)++;
    }
}

/* ------------------------------------------------------------------ growable arrays */

static inline uint64_t hash64(uint64_t key)
{
    return (key * 0x9E3779B97F4A7C15ull) >> 17;
}

/* Room for one more element in *array (of *capacity elements of `size` bytes). */
static int reserve(void **array, uint32_t *capacity, uint32_t used, size_t size)
{
    if (used < *capacity)
        return 0;
    uint32_t grown = *capacity ? *capacity * 2 : INITIAL_CAPACITY;
    void *bigger = realloc(*array, size * grown);
    if (bigger == NULL)
        return -1;
    *array = bigger;
    *capacity = grown;
    return 0;
}

/* ------------------------------------------------------------------ instruction records */

static int grow_record_index(vcache *v)
{
    uint64_t capacity = v->index_capacity ? v->index_capacity * 2 : INITIAL_CAPACITY;
    uint32_t *index = calloc(capacity, sizeof(uint32_t));
    if (index == NULL)
        return -1;
    for (uint32_t r = 0; r < v->nrecords; r++) {
        uint64_t slot = hash64(v->records[r].address) & (capacity - 1);
        while (index[slot])
            slot = (slot + 1) & (capacity - 1);
        index[slot] = r + 1;
    }
    free(v->record_index);
    v->record_index = index;
    v->index_capacity = capacity;
    return 0;
}

/* The record of the instruction at `address`, created on first sight; NO_RECORD when out of
 * memory. An address keeps the length it was first decoded with. */
static uint32_t record_for(vcache *v, uint64_t address, uint32_t length)
{
    if (2 * ((uint64_t)v->nrecords + 1) > v->index_capacity && grow_record_index(v) != 0)
        return NO_RECORD;
    uint64_t mask = v->index_capacity - 1;
    uint64_t slot = hash64(address) & mask;
    for (; v->record_index[slot]; slot = (slot + 1) & mask)
        if (v->records[v->record_index[slot] - 1].address == address)
            return v->record_index[slot] - 1;
    if (reserve((void **)&v->records, &v->records_capacity, v->nrecords, sizeof(vcache_record)))
        return NO_RECORD;
    vcache_record *r = &v->records[v->nrecords];
    memset(r, 0, sizeof(*r));
    r->address = address;
    r->length = length;
    v->record_index[slot] = ++v->nrecords;
    return v->nrecords - 1;
}

/* ------------------------------------------------------------------ blocks */

static inline uint64_t block_slot(uint64_t address, uint32_t size, uint64_t capacity)
{
    return hash64(address ^ ((uint64_t)size << 48)) & (capacity - 1);
}

static int grow_blocks(vcache *v)
{
    uint64_t capacity = v->blocks_capacity ? v->blocks_capacity * 2 : INITIAL_CAPACITY;
    block *blocks = malloc(sizeof(block) * capacity);
    if (blocks == NULL)
        return -1;
    for (uint64_t i = 0; i < capacity; i++)
        blocks[i].address = EMPTY_ADDRESS;
    for (uint64_t i = 0; i < v->blocks_capacity; i++) {
        if (v->blocks[i].address == EMPTY_ADDRESS)
            continue;
        uint64_t slot = block_slot(v->blocks[i].address, v->blocks[i].size, capacity);
        while (blocks[slot].address != EMPTY_ADDRESS)
            slot = (slot + 1) & (capacity - 1);
        blocks[slot] = v->blocks[i];
    }
    free(v->blocks);
    v->blocks = blocks;
    v->blocks_capacity = capacity;
    return 0;
}

/* Decode a block seen for the first time into instruction records. A block whose code cannot
 * be read, or that ends in bytes the decoder does not know, keeps the rest as one instruction
 * (its fetch capped at the longest x86 instruction). */
static int decode_block(vcache *v, block *b)
{
    uint8_t *lengths = malloc(2 * (b->size ? b->size : 1));
    if (lengths == NULL)
        return -1;
    uint8_t *flags = lengths + (b->size ? b->size : 1);
    uint32_t count = b->size ? v->decode(b->address, b->size, lengths, flags) : 0;
    uint32_t decoded = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (lengths[i] == 0 || lengths[i] > LONGEST_INSTRUCTION) /* not x86: trust no more */
            count = i;
        else
            decoded += lengths[i];
    }
    if (decoded < b->size || count == 0) {
        uint32_t rest = b->size - decoded;
        lengths[count] = rest == 0 ? 1 : rest > LONGEST_INSTRUCTION ? LONGEST_INSTRUCTION : rest;
        flags[count++] = 0;
    }
    b->first = v->ninstructions;
    b->count = 0;
    b->executions = 0;
    uint64_t address = b->address;
    uint64_t previous_end_line = 0; /* line of the previous instruction's last byte */
    for (uint32_t i = 0; i < count; i++) {
        uint32_t record = record_for(v, address, lengths[i]);
        if (record == NO_RECORD
            || reserve((void **)&v->block_instructions, &v->instructions_capacity,
                       v->ninstructions, sizeof(block_instruction))) {
            free(lengths);
            return -1;
        }
        uint64_t first_line = address >> v->i1.line_bits;
        uint64_t end_line = (address + v->records[record].length - 1) >> v->i1.line_bits;
        int fetch = i == 0 || first_line != end_line || first_line != previous_end_line;
        v->block_instructions[v->ninstructions++] = (block_instruction){
            address, record, (uint8_t)v->records[record].length, (uint8_t)fetch, flags[i]};
        previous_end_line = end_line;
        b->count++;
        address += lengths[i];
    }
    free(lengths);
    return 0;
}

static block *block_for(vcache *v, uint64_t address, uint32_t size)
{
    if (2 * (v->nblocks + 1) > v->blocks_capacity && grow_blocks(v) != 0)
        return NULL;
    uint64_t mask = v->blocks_capacity - 1;
    uint64_t slot = block_slot(address, size, v->blocks_capacity);
    for (; v->blocks[slot].address != EMPTY_ADDRESS; slot = (slot + 1) & mask)
        if (v->blocks[slot].address == address && v->blocks[slot].size == size)
            return &v->blocks[slot];
    block *b = &v->blocks[slot];
    b->address = address;
    b->size = size;
    v->nblocks++;
    if (decode_block(v, b) != 0)
        return NULL;
    return b;
}

/* ------------------------------------------------------------------ simulation */

static inline void charge_deferred(vcache *v)
{
    if (!(v->deferred[EV_EXCACHE_MISS] | v->deferred[EV_RPC]))
        return;
    vcache_record *r = &v->records[v->current];
    for (int e = EV_EXCACHE_MISS; e < EV_COUNT; e++) {
        r->counts[e] += v->deferred[e];
        v->deferred[e] = 0;
    }
}

/* The current instruction is complete: simulate its data accesses in order. */
static void simulate_pending(vcache *v)
{
    vcache_record *r = &v->records[v->current];
    int previous_was_read = 0; /* a read that a write may still join into a modify */
    for (uint32_t i = 0; i < v->npending; i++) {
        const access *a = &v->pending[i];
        if (a->kind == ACCESS_WRITE) {
            const access *before = &v->pending[i - (i > 0)];
            int modify = previous_was_read && before->address == a->address
                         && before->size == a->size;
            previous_was_read = 0;
            if (modify) {
                if (v->current_flags & LOCKED_UPDATE)
                    r->counts[EV_DR]++; /* VEX's load before its compare-and-swap: a hit */
                continue; /* counted as its read alone */
            }
            r->counts[EV_DW]++;
            hierarchy_ref(&v->d1, &v->ll, a->address, a->size, &r->counts[EV_D1MW],
                          &r->counts[EV_DLMW]);
        } else {
            r->counts[EV_DR]++;
            hierarchy_ref(&v->d1, &v->ll, a->address, a->size, &r->counts[EV_D1MR],
                          &r->counts[EV_DLMR]);
            previous_was_read = 1;
        }
    }
    v->npending = 0;
}

static inline void fetch(vcache *v, const block_instruction *instruction)
{
    if (!instruction->fetch)
        return;
    uint64_t first_line = instruction->address >> v->i1.line_bits;
    uint64_t end_line = (instruction->address + instruction->length - 1) >> v->i1.line_bits;
    if (first_line == end_line && first_line == v->last_fetch_line)
        return; /* the line of the latest fetch is its set's most recently used: a hit */
    v->last_fetch_line = end_line;
    uint64_t *counts = v->records[instruction->record].counts; /* touched on a miss only */
    hierarchy_ref(&v->i1, &v->ll, instruction->address, instruction->length, &counts[EV_I1MR],
                  &counts[EV_ILMR]);
}

/* The next instruction of the running block starts: its fetch (its Ir is counted with the
 * block's executions). */
static inline void start_next_instruction(vcache *v)
{
    if (v->npending)
        simulate_pending(v);
    const block_instruction *next = &v->block_instructions[v->block_first + v->started++];
    v->current = next->record;
    v->current_address = next->address;
    v->current_flags = next->flags;
    fetch(v, next);
}

/* The index in the running block of the instruction at `address`, among those not yet
 * started; block_count if it is not there. */
static inline uint32_t find_ahead(const vcache *v, uint64_t address)
{
    const block_instruction *instructions = &v->block_instructions[v->block_first];
    uint32_t i = v->started;
    while (i < v->block_count && instructions[i].address != address)
        i++;
    return i;
}

/* Run the running block's instructions up to the one at `address`; if it is not among those
 * still to come, the access stays with the current instruction. */
static inline void run_up_to(vcache *v, uint64_t address)
{
    if (v->started > 0 && v->current_address == address)
        return;
    uint32_t i = find_ahead(v, address);
    if (i == v->block_count) {
        if (v->started == 0 && v->block_count > 0)
            start_next_instruction(v); /* cannot place it: the block's first instruction */
        return;
    }
    while (v->started <= i)
        start_next_instruction(v);
}

static inline uint64_t virtual_address(const vcache *v, uint64_t address)
{
    uint64_t slot = (address - v->slot_base) >> PAGE_SHIFT;
    if (address < v->slot_base || slot >= v->slot_count)
        return address; /* not in the slot region: already virtual */
    return (v->tags[slot] << PAGE_SHIFT) | (address & PAGE_OFFSET_MASK);
}

static inline void data_access(vcache *v, void *uc, access_kind kind, uint64_t slot_address,
                               int size)
{
    if (v->block_count == 0 || size <= 0) /* also after a failure or the end */
        return;
    uint64_t rip = 0;
    v->reg_read(uc, UC_X86_REG_RIP, &rip);
    run_up_to(v, rip);
    if (v->current == NO_RECORD)
        return;
    charge_deferred(v); /* a miss this very access caused */
    uint64_t address = virtual_address(v, slot_address);
    uint32_t bytes = (uint32_t)size;
    if (v->npending > 0) {
        access *last = &v->pending[v->npending - 1];
        if (last->kind == kind && last->address + last->size == address
            && last->size % QUADWORD == 0 && last->size + bytes <= v->max_access) {
            last->size += bytes; /* the next part of a wide operand */
            return;
        }
    }
    if (v->npending == MAX_PENDING)
        simulate_pending(v);
    if (bytes > v->max_access)
        bytes = v->max_access; /* as cachegrind caps wide accesses */
    v->pending[v->npending++] = (access){address, bytes, kind};
}

/* The running block is over: its remaining instructions ran. */
static inline void finish_block(vcache *v)
{
    if (v->npending)
        simulate_pending(v);
    if (v->started == v->block_count)
        return;
    const block_instruction *instructions = &v->block_instructions[v->block_first];
    for (uint32_t i = v->started; i < v->block_count; i++)
        fetch(v, &instructions[i]);
    v->started = v->block_count;
    v->current = instructions[v->block_count - 1].record;
    v->current_address = instructions[v->block_count - 1].address;
    v->current_flags = instructions[v->block_count - 1].flags;
}

/* ------------------------------------------------------------------ the hooks */

/* UC_HOOK_BLOCK: a translation block starts. */
void vcache_on_block(void *uc, uint64_t address, uint32_t size, void *user_data)
{
    (void)uc;
    vcache *v = user_data;
    if (v->failed || v->finished)
        return;
    finish_block(v);
    block *b = block_for(v, address, size);
    if (b == NULL) {
        v->failed = 1;
        v->block_count = 0;
        return;
    }
    b->executions++;
    v->block_first = b->first;
    v->block_count = b->count;
    v->started = 0;
    if (v->current == NO_RECORD) /* the first block: fetching it is its first instruction's */
        v->current = v->block_instructions[b->first].record;
    charge_deferred(v); /* else: a syscall's RPCs, fetching this block: the previous one's */
}

/* UC_HOOK_MEM_READ */
void vcache_on_read(void *uc, int type, uint64_t address, int size, int64_t value,
                    void *user_data)
{
    (void)type, (void)value;
    data_access(user_data, uc, ACCESS_READ, address, size);
}

/* UC_HOOK_MEM_WRITE */
void vcache_on_write(void *uc, int type, uint64_t address, int size, int64_t value,
                     void *user_data)
{
    (void)type, (void)value;
    data_access(user_data, uc, ACCESS_WRITE, address, size);
}

/* ------------------------------------------------------------------ Python's interface */

void vcache_free(vcache *v);

/* Geometries are checked by Python (power-of-two sets and lines, lines of at least 16
 * bytes). The ExCache's tags must outlive the simulator. NULL when out of memory. */
vcache *vcache_new(uint64_t i1_size, uint32_t i1_assoc, uint32_t i1_line,
                   uint64_t d1_size, uint32_t d1_assoc, uint32_t d1_line,
                   uint64_t ll_size, uint32_t ll_assoc, uint32_t ll_line,
                   void *decode, void *reg_read,
                   uint64_t slot_base, uint64_t slot_count, const uint64_t *tags)
{
    vcache *v = calloc(1, sizeof(vcache));
    if (v == NULL)
        return NULL;
    v->decode = (decode_fn)decode;
    v->reg_read = (reg_read_fn)reg_read;
    v->slot_base = slot_base;
    v->slot_count = slot_count;
    v->tags = tags;
    v->current = NO_RECORD;
    v->last_fetch_line = EMPTY_TAG;
    uint32_t smallest = i1_line < d1_line ? i1_line : d1_line;
    v->max_access = smallest < ll_line ? smallest : ll_line;
    if (cache_init(&v->i1, i1_size, i1_assoc, i1_line) != 0
        || cache_init(&v->d1, d1_size, d1_assoc, d1_line) != 0
        || cache_init(&v->ll, ll_size, ll_assoc, ll_line) != 0
        || grow_blocks(v) != 0 || grow_record_index(v) != 0) {
        vcache_free(v);
        return NULL;
    }
    return v;
}

void vcache_free(vcache *v)
{
    if (v == NULL)
        return;
    free(v->i1.tags);
    free(v->d1.tags);
    free(v->ll.tags);
    free(v->records);
    free(v->record_index);
    free(v->blocks);
    free(v->block_instructions);
    free(v);
}

/* The run is over, stopped at `stop_address`: the last block ran up to the instruction there
 * (a fault) or to its end (an exit or a signal sent by a syscall, whose address is the next
 * instruction's). What is still deferred (the exit's RPC) belongs to the last instruction.
 * Then every instruction's Ir is its blocks' executions. */
void vcache_finish(vcache *v, uint64_t stop_address)
{
    if (v->failed || v->finished)
        return;
    v->finished = 1;
    uint32_t stop = v->started > 0 && v->current_address == stop_address
                        ? v->started - 1 : find_ahead(v, stop_address);
    uint32_t last = stop < v->block_count ? stop + 1 : v->block_count;
    while (v->started < last)
        start_next_instruction(v);
    if (v->npending)
        simulate_pending(v);
    if (v->current != NO_RECORD)
        charge_deferred(v);
    for (uint64_t i = 0; i < v->blocks_capacity; i++) {
        const block *b = &v->blocks[i];
        if (b->address == EMPTY_ADDRESS)
            continue;
        for (uint32_t k = 0; k < b->count; k++)
            v->records[v->block_instructions[b->first + k].record].counts[EV_IR] += b->executions;
    }
    for (uint32_t k = last; k < v->block_count; k++) /* counted with the block, never ran */
        v->records[v->block_instructions[v->block_first + k].record].counts[EV_IR]--;
    v->block_count = 0;
}

/* Charge one ExCache miss / one RPC; see the top of this file for where it lands. */
void vcache_count_excache_miss(vcache *v)
{
    v->deferred[EV_EXCACHE_MISS]++;
}

void vcache_count_rpc(vcache *v)
{
    v->deferred[EV_RPC]++;
}

int vcache_failed(const vcache *v)
{
    return v->failed;
}

uint32_t vcache_record_count(const vcache *v)
{
    return v->nrecords;
}

/* Copy up to `max` records into `out` (after vcache_finish); returns how many were copied. */
uint32_t vcache_copy_records(const vcache *v, vcache_record *out, uint32_t max)
{
    uint32_t count = v->nrecords < max ? v->nrecords : max;
    memcpy(out, v->records, sizeof(vcache_record) * count);
    return count;
}

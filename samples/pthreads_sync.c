/* pthreads_sync.c - threads that wait for each other: a bounded buffer with a mutex and two
 * condition variables (two producers, two consumers), a barrier between phases, per-thread
 * storage (__thread) that every thread sees at its own address, and pthread_join values.
 * Everything printed is printed by the main thread, in a fixed order.
 * Exit status: 0, or the number of the first failed check. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(code, cond)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "pthreads_sync: check %d failed: %s\n", (code), #cond);    \
            exit(code);                                                                \
        }                                                                              \
    } while (0)

#define SLOTS 4
#define ITEMS 2000 /* per producer */
#define PRODUCERS 2
#define CONSUMERS 2
#define WORKERS 4
#define PHASES 3

/* ------------------------------------------------------------ bounded buffer */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_full, not_empty;
    int items[SLOTS];
    int head, count, producers_left;
} buffer = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
            {0}, 0, 0, PRODUCERS};

static void *produce(void *arg)
{
    int base = (int)(intptr_t)arg * ITEMS;
    for (int i = 1; i <= ITEMS; i++) {
        pthread_mutex_lock(&buffer.lock);
        while (buffer.count == SLOTS)
            pthread_cond_wait(&buffer.not_full, &buffer.lock);
        buffer.items[(buffer.head + buffer.count++) % SLOTS] = base + i;
        pthread_cond_signal(&buffer.not_empty);
        pthread_mutex_unlock(&buffer.lock);
    }
    pthread_mutex_lock(&buffer.lock);
    buffer.producers_left--;
    pthread_cond_broadcast(&buffer.not_empty);
    pthread_mutex_unlock(&buffer.lock);
    return NULL;
}

struct consumed {
    long sum;
    int count;
};

static void *consume(void *arg)
{
    struct consumed *mine = arg;
    for (;;) {
        pthread_mutex_lock(&buffer.lock);
        while (buffer.count == 0 && buffer.producers_left > 0)
            pthread_cond_wait(&buffer.not_empty, &buffer.lock);
        if (buffer.count == 0) {
            pthread_mutex_unlock(&buffer.lock);
            return mine;
        }
        int item = buffer.items[buffer.head];
        buffer.head = (buffer.head + 1) % SLOTS;
        buffer.count--;
        pthread_cond_signal(&buffer.not_full);
        pthread_mutex_unlock(&buffer.lock);
        mine->sum += item;
        mine->count++;
    }
}

/* ------------------------------------------------------------ barrier and TLS */

static pthread_barrier_t barrier;
static __thread long tls_value = 7;
static __thread char tls_name[16];
static long phase_sums[PHASES][WORKERS];
static uintptr_t tls_addresses[WORKERS];

static void *phased(void *arg)
{
    int id = (int)(intptr_t)arg;
    tls_value = 100 * (id + 1);
    snprintf(tls_name, sizeof tls_name, "worker-%d", id);
    tls_addresses[id] = (uintptr_t)&tls_value;
    for (int phase = 0; phase < PHASES; phase++) {
        /* each phase reads what every worker wrote in the one before */
        long sum = tls_value + phase;
        if (phase > 0)
            for (int w = 0; w < WORKERS; w++)
                sum += phase_sums[phase - 1][w] % 1000;
        phase_sums[phase][id] = sum;
        int serial = pthread_barrier_wait(&barrier);
        CHECK(10, serial == 0 || serial == PTHREAD_BARRIER_SERIAL_THREAD);
    }
    CHECK(11, strcmp(tls_name, "worker-") > 0 && tls_name[7] == '0' + id);
    return (void *)(intptr_t)(tls_value + id);
}

int main(void)
{
    pthread_t producers[PRODUCERS], consumers[CONSUMERS], workers[WORKERS];
    struct consumed results[CONSUMERS];
    memset(results, 0, sizeof results);
    for (int i = 0; i < CONSUMERS; i++)
        CHECK(1, pthread_create(&consumers[i], NULL, consume, &results[i]) == 0);
    for (int i = 0; i < PRODUCERS; i++)
        CHECK(2, pthread_create(&producers[i], NULL, produce, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < PRODUCERS; i++)
        CHECK(3, pthread_join(producers[i], NULL) == 0);
    long sum = 0;
    int count = 0;
    for (int i = 0; i < CONSUMERS; i++) {
        void *back;
        CHECK(4, pthread_join(consumers[i], &back) == 0 && back == &results[i]);
        sum += results[i].sum;
        count += results[i].count;
    }
    long n = (long)PRODUCERS * ITEMS;
    CHECK(5, count == n && sum == n * (n + 1) / 2);
    printf("bounded buffer: %d items, sum %ld\n", count, sum);

    CHECK(6, pthread_barrier_init(&barrier, NULL, WORKERS) == 0);
    for (int i = 0; i < WORKERS; i++)
        CHECK(7, pthread_create(&workers[i], NULL, phased, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < WORKERS; i++) {
        void *back;
        CHECK(8, pthread_join(workers[i], &back) == 0);
        printf("worker %d returned %ld\n", i, (long)(intptr_t)back);
    }
    for (int phase = 0; phase < PHASES; phase++) {
        printf("phase %d:", phase);
        for (int w = 0; w < WORKERS; w++)
            printf(" %ld", phase_sums[phase][w]);
        printf("\n");
    }
    for (int i = 0; i < WORKERS; i++)
        for (int j = i + 1; j < WORKERS; j++)
            CHECK(9, tls_addresses[i] != tls_addresses[j]);
    CHECK(12, tls_value == 7 && (uintptr_t)&tls_value != tls_addresses[0]);
    printf("main's tls_value %ld, every thread had its own\n", tls_value);
    pthread_barrier_destroy(&barrier);
    return 0;
}

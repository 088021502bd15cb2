/* pthreads_wc.c - a parallel word count: a generated text is split into NTHREADS chunks
 * (cut at word boundaries), each counted by its own thread; the results come back through
 * pthread_join and are printed in thread order, then checked against a sequential count.
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
            fprintf(stderr, "pthreads_wc: check %d failed: %s\n", (code), #cond);      \
            exit(code);                                                                \
        }                                                                              \
    } while (0)

#define NTHREADS 4
#define TEXT_SIZE (256 * 1024)

struct chunk {
    const char *start;
    size_t length;
    unsigned long words, lines, letters;
};

static char text[TEXT_SIZE];

static int is_space(char c) { return c == ' ' || c == '\n' || c == '\t'; }

/* Words of pseudo-random length and letters, with a newline every so often. */
static void generate(void)
{
    uint32_t state = 12345;
    size_t i = 0;
    while (i < TEXT_SIZE - 1) {
        state = state * 1103515245u + 12345u;
        size_t len = 1 + (state >> 16) % 9;
        for (size_t k = 0; k < len && i < TEXT_SIZE - 1; k++)
            text[i++] = (char)('a' + (state >> (k % 16)) % 26);
        if (i < TEXT_SIZE - 1)
            text[i++] = (state >> 8) % 7 == 0 ? '\n' : ' ';
    }
    text[TEXT_SIZE - 1] = '\0';
}

static void count(struct chunk *c)
{
    int inword = 0;
    for (size_t i = 0; i < c->length; i++) {
        char ch = c->start[i];
        if (ch == '\n')
            c->lines++;
        if (is_space(ch)) {
            inword = 0;
        } else {
            c->letters++;
            if (!inword)
                c->words++;
            inword = 1;
        }
    }
}

static void *worker(void *arg)
{
    struct chunk *c = arg;
    count(c);
    return (void *)(uintptr_t)c->words;
}

int main(void)
{
    generate();
    size_t total = strlen(text);
    struct chunk chunks[NTHREADS];
    pthread_t threads[NTHREADS];
    size_t at = 0;
    for (int t = 0; t < NTHREADS; t++) {
        size_t end = t == NTHREADS - 1 ? total : (total / NTHREADS) * (t + 1);
        while (end < total && !is_space(text[end]))
            end++; /* never split a word */
        chunks[t] = (struct chunk){text + at, end - at, 0, 0, 0};
        at = end;
    }
    for (int t = 0; t < NTHREADS; t++)
        CHECK(1, pthread_create(&threads[t], NULL, worker, &chunks[t]) == 0);
    unsigned long words = 0, lines = 0, letters = 0;
    for (int t = 0; t < NTHREADS; t++) {
        void *result;
        CHECK(2, pthread_join(threads[t], &result) == 0);
        CHECK(3, (uintptr_t)result == chunks[t].words);
        printf("thread %d: %zu bytes, %lu words, %lu lines\n", t, chunks[t].length,
               chunks[t].words, chunks[t].lines);
        words += chunks[t].words;
        lines += chunks[t].lines;
        letters += chunks[t].letters;
    }
    struct chunk all = {text, total, 0, 0, 0};
    count(&all);
    CHECK(4, all.words == words && all.lines == lines && all.letters == letters);
    printf("total: %lu words, %lu lines, %lu letters\n", words, lines, letters);
    return 0;
}

/* The thread pool behind kiln_parallel_for (kiln_model.h).
 *
 * A pool of T threads is the caller plus T-1 workers started once, at session create.
 * kiln_parallel_for(e, fn, n) splits [0, n) statically into up to KILN_CHUNKS_PER_THREAD * T
 * contiguous chunks (chunk c is the same range whoever runs it), and gives thread t the t-th
 * contiguous run of chunks: consecutive kernels hand a thread the same part of their tasks
 * (the same image rows, for the conv kernels), so what it wrote stays in its own cache for
 * the next kernel to read. A thread runs its own chunks from the front, then takes what is
 * left of the others' from their back ends: a worker that is asleep, or waiting for a CPU
 * on a busy machine, holds the caller up by one small chunk at most. Each thread's run is
 * one 64-bit word, (job number << 32) | (next << 16) | end, claimed by compare-and-swap: a
 * thread that wakes late for a finished job sees another number and claims nothing.
 *
 * A waiting thread spins on pause instructions for KILN_SPIN_NS, then yields the CPU until
 * KILN_YIELD_NS have passed, then sleeps on a condition variable: kernels come in quick
 * succession during a run and runs often follow each other closely, and a thread that went
 * to sleep comes back slowly on a virtual machine (its CPU halted, its caches taken by other
 * guests: two-thread SqueezeNet ran 1.6x slower with 0.1 ms of waiting before sleep than
 * with 2 ms on a 2-vCPU VM). The waits are measured in time, not in pauses, since a pause
 * lasts 10 to 140 cycles by CPU. Between runs the workers cost nothing once asleep. The run
 * path allocates nothing.
 *
 * A worker that spins on the caller's own CPU (the kernel may wake it there, and a thread
 * that never sleeps again is not moved) gets no CPU until the caller's time slice ends: the
 * caller runs the whole job alone, and 40% of two-thread runs on a 2-vCPU VM took the
 * one-thread time. So on Linux, where there are CPUs enough, the caller checks at each job
 * whether a worker last ran on its CPU and if so moves it off by narrowing its affinity; the
 * worker widens it back when it next takes a job (it stays where it was moved). */
#define _GNU_SOURCE /* sched_getaffinity, sched_getcpu, pthread_setaffinity_np, CPU_COUNT */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kiln_pool.h"

#ifndef KILN_SPIN_NS
#define KILN_SPIN_NS 50000L
#endif
#ifndef KILN_YIELD_NS
#define KILN_YIELD_NS 2000000L
#endif
#ifndef KILN_CHUNKS_PER_THREAD
#define KILN_CHUNKS_PER_THREAD 4
#endif

typedef struct kiln_worker {
    struct kiln_pool *pool;
    int index; /* 1 .. num_threads-1 (the caller is 0) */
    pthread_t thread;
    atomic_int cpu;     /* the CPU it last took a job on, -1 when unknown */
    atomic_int moved;   /* the caller narrowed its affinity; it widens it back */
} kiln_worker;

/* One thread's run of chunks of the current job, on a cache line of its own. */
typedef struct kiln_run {
    _Alignas(64) _Atomic uint64_t word; /* (job << 32) | (next << 16) | end */
} kiln_run;

struct kiln_pool {
    int num_threads;
    kiln_worker *workers;
    kiln_run *runs;         /* num_threads of them */
    pthread_mutex_t mutex;
    pthread_cond_t wake;    /* workers sleep here */
    pthread_cond_t done;    /* the caller sleeps here */
    atomic_uint job;        /* number of the current job, bumped to publish one */
    _Alignas(64) atomic_int pending;    /* chunks of the current job not finished yet */
    atomic_int sleepers;    /* workers asleep or about to sleep */
    atomic_int caller_asleep;
    int stop;
#ifdef __linux__
    cpu_set_t allowed;      /* the process's CPUs when the pool was made */
    int separate;           /* whether co-located workers are moved (CPUs enough) */
#endif
    /* the current job, written by the caller before it bumps `job` */
    kiln_task_fn fn;
    const kiln_exec *exec;
    int64_t n;
    int64_t chunks;
};

/* Set on workers, and on the caller while it runs chunks: a nested kiln_parallel_for then
 * runs serially on the calling thread instead of deadlocking. */
static _Thread_local int in_task;

static int64_t monotonic_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* How long a thread has waited; the clock is read once every 16 steps. */
typedef struct kiln_wait {
    int64_t start, waited;
    unsigned step;
} kiln_wait;

static inline void pause_cpu(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* One step of waiting: a pause, or a yield once KILN_SPIN_NS have passed. Returns 0 once
 * KILN_YIELD_NS have passed: time to sleep. */
static inline int backoff(kiln_wait *w) {
    if ((w->step++ & 15) == 0) {
        int64_t t = monotonic_ns();
        if (w->step == 1) w->start = t;
        w->waited = t - w->start;
        if (w->waited >= KILN_YIELD_NS) return 0;
    }
    if (w->waited < KILN_SPIN_NS)
        pause_cpu();
    else
        sched_yield();
    return 1;
}

/* Claim a chunk of job `job` from run r: its next one (front) or its last one (back).
 * Returns the chunk, or -1 when the run is exhausted or belongs to another job. */
static int64_t claim(kiln_pool *pool, int r, unsigned job, int back) {
    _Atomic uint64_t *word = &pool->runs[r].word;
    uint64_t v = atomic_load(word);
    for (;;) {
        if ((unsigned)(v >> 32) != job) return -1;
        uint64_t next = (v >> 16) & 0xffffu, end = v & 0xffffu;
        if (next >= end) return -1;
        uint64_t claimed = back ? v - 1 : v + (1u << 16);
        if (atomic_compare_exchange_weak(word, &v, claimed))
            return (int64_t)(back ? end - 1 : next);
    }
}

static void run_chunk(kiln_pool *pool, int64_t c, int64_t chunks) {
    int64_t n = pool->n, base = n / chunks, rem = n % chunks;
    int64_t lo = c * base + (c < rem ? c : rem);
    int64_t hi = lo + base + (c < rem ? 1 : 0);
    if (lo < hi) pool->fn(pool->exec, lo, hi);
    if (atomic_fetch_sub(&pool->pending, 1) == 1 && atomic_load(&pool->caller_asleep)) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_signal(&pool->done);
        pthread_mutex_unlock(&pool->mutex);
    }
}

/* Run job `job` as thread `self`: its own run of chunks from the front, then the others'
 * from the back. Once a thread holds a chunk the job (and pool->fn, n) cannot change. */
static void run_chunks(kiln_pool *pool, unsigned job, int self, int64_t chunks) {
    int64_t c;
    while ((c = claim(pool, self, job, 0)) >= 0) run_chunk(pool, c, chunks);
    for (int k = 1; k < pool->num_threads; k++) {
        int victim = (self + k) % pool->num_threads;
        while ((c = claim(pool, victim, job, 1)) >= 0) run_chunk(pool, c, chunks);
    }
}

static void *worker_main(void *arg) {
    kiln_worker *self = arg;
    kiln_pool *pool = self->pool;
    unsigned seen = 0;
    in_task = 1;
    for (;;) {
        unsigned job = atomic_load(&pool->job);
        kiln_wait w = {0, 0, 0};
        while (job == seen && backoff(&w)) job = atomic_load(&pool->job);
        if (job == seen) {
            pthread_mutex_lock(&pool->mutex);
            atomic_fetch_add(&pool->sleepers, 1);
            while ((job = atomic_load(&pool->job)) == seen)
                pthread_cond_wait(&pool->wake, &pool->mutex);
            atomic_fetch_sub(&pool->sleepers, 1);
            pthread_mutex_unlock(&pool->mutex);
        }
        seen = job;
        if (pool->stop) return NULL;
#ifdef __linux__
        if (pool->separate) {
            if (atomic_load_explicit(&self->moved, memory_order_relaxed)) {
                atomic_store_explicit(&self->moved, 0, memory_order_relaxed);
                pthread_setaffinity_np(pthread_self(), sizeof pool->allowed, &pool->allowed);
            }
            atomic_store_explicit(&self->cpu, sched_getcpu(), memory_order_relaxed);
        }
#endif
        run_chunks(pool, job, self->index, pool->chunks);
    }
}

/* Publish a job (or the stop). The seq_cst bump of `job` followed by the read of sleepers
 * pairs with a worker's increment of sleepers followed by its re-read of `job` under the
 * mutex: either the worker sees the new job or we see it going to sleep and wake it. */
static unsigned publish(kiln_pool *pool) {
    unsigned job = atomic_fetch_add(&pool->job, 1) + 1;
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
    return job;
}

/* Move any worker that last ran on the caller's CPU to the others (see the top). */
static void separate_workers(kiln_pool *pool) {
#ifdef __linux__
    if (!pool->separate) return;
    int me = sched_getcpu();
    if (me < 0 || me >= CPU_SETSIZE) return;
    for (int i = 0; i < pool->num_threads - 1; i++) {
        kiln_worker *w = &pool->workers[i];
        if (atomic_load_explicit(&w->cpu, memory_order_relaxed) != me) continue;
        cpu_set_t others = pool->allowed;
        CPU_CLR(me, &others);
        atomic_store_explicit(&w->cpu, -1, memory_order_relaxed);
        if (pthread_setaffinity_np(w->thread, sizeof others, &others) == 0)
            atomic_store_explicit(&w->moved, 1, memory_order_relaxed);
    }
#else
    (void)pool;
#endif
}

KILN_HIDDEN void kiln_parallel_for(const kiln_exec *e, kiln_task_fn fn, int64_t n) {
    kiln_pool *pool = e->pool;
    if (n <= 0) return;
    if (pool == NULL || n == 1 || in_task) {
        fn(e, 0, n);
        return;
    }
    int64_t chunks = (int64_t)pool->num_threads * KILN_CHUNKS_PER_THREAD;
    if (chunks > n) chunks = n;
    if (chunks > 0xffff) chunks = 0xffff;
    pool->fn = fn;
    pool->exec = e;
    pool->n = n;
    pool->chunks = chunks;
    atomic_store(&pool->pending, (int)chunks);
    unsigned job = atomic_load(&pool->job) + 1;
    int threads = pool->num_threads;
    for (int t = 0; t < threads; t++) {   /* thread t: chunks [t*C/T, (t+1)*C/T) */
        uint64_t lo = (uint64_t)(chunks * t / threads), hi = (uint64_t)(chunks * (t + 1) / threads);
        atomic_store(&pool->runs[t].word, ((uint64_t)job << 32) | (lo << 16) | hi);
    }
    separate_workers(pool);
    publish(pool);

    in_task = 1;
    run_chunks(pool, job, 0, chunks);
    in_task = 0;

    kiln_wait w = {0, 0, 0};
    while (atomic_load(&pool->pending) != 0 && backoff(&w)) {}
    if (atomic_load(&pool->pending) != 0) {
        pthread_mutex_lock(&pool->mutex);
        atomic_store(&pool->caller_asleep, 1);
        while (atomic_load(&pool->pending) != 0) pthread_cond_wait(&pool->done, &pool->mutex);
        atomic_store(&pool->caller_asleep, 0);
        pthread_mutex_unlock(&pool->mutex);
    }
}

static void pool_free(kiln_pool *pool, int started) {
    pthread_mutex_lock(&pool->mutex);
    pool->stop = 1;
    pthread_mutex_unlock(&pool->mutex);
    publish(pool);
    for (int i = 0; i < started; i++) pthread_join(pool->workers[i].thread, NULL);
    pthread_cond_destroy(&pool->done);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->mutex);
    free(pool->workers);
    free(pool->runs);
    free(pool);
}

KILN_HIDDEN void kiln_pool_destroy(kiln_pool *pool) { pool_free(pool, pool->num_threads - 1); }

KILN_HIDDEN int kiln_pool_create(int num_threads, kiln_pool **out, int *failed_worker) {
    kiln_pool *pool = aligned_alloc(64, sizeof *pool);   /* its atomics sit on own lines */
    if (pool != NULL) memset(pool, 0, sizeof *pool);
    kiln_worker *workers = calloc((size_t)num_threads - 1, sizeof *workers);
    size_t runs_size = (size_t)num_threads * sizeof(kiln_run);
    kiln_run *runs = aligned_alloc(64, runs_size);   /* sizeof(kiln_run) is 64 */
    if (pool == NULL || workers == NULL || runs == NULL) {
        free(pool);
        free(workers);
        free(runs);
        return ENOMEM;
    }
    for (int t = 0; t < num_threads; t++) atomic_init(&runs[t].word, 0);
    pool->num_threads = num_threads;
    pool->workers = workers;
    pool->runs = runs;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
#ifdef __linux__
    pool->separate = sched_getaffinity(0, sizeof pool->allowed, &pool->allowed) == 0
                     && num_threads > 1 && CPU_COUNT(&pool->allowed) >= num_threads;
#endif
    for (int i = 0; i < num_threads - 1; i++) {
        workers[i].pool = pool;
        workers[i].index = i + 1;
        atomic_init(&workers[i].cpu, -1);
        atomic_init(&workers[i].moved, 0);
        int err = pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
        if (err != 0) {
            pool_free(pool, i);
            *failed_worker = i + 1;
            return err;
        }
    }
    *out = pool;
    return 0;
}

KILN_HIDDEN int kiln_default_threads(int cap) {
    long n = 0;
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
#endif
    if (n <= 0) n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0) n = 1;
    return n > cap ? cap : (int)n;
}

/* Monotonic seconds, for profiling (KILN_LAUNCH). */
KILN_HIDDEN double kiln_seconds(void) { return 1e-9 * (double)monotonic_ns(); }

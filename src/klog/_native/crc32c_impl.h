/*
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) for klog.
 *
 * Included only by crc32c.pyx. Public entry points:
 *   klog_crc32c_init()                    one-time setup; call before anything else
 *   klog_crc32c_update(crc, buf, len)     dispatching update
 *   klog_crc32c_sw(crc, buf, len)         portable slicing-by-8
 *   klog_crc32c_hw(crc, buf, len)         SSE4.2 (only when klog_crc32c_have_hw)
 *
 * All take and return the finished (post-inverted) CRC, so
 * update(update(0, a), b) == crc32c(a + b), like the `crc32c` PyPI package.
 */
#ifndef KLOG_CRC32C_IMPL_H
#define KLOG_CRC32C_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define KLOG_CRC32C_POLY 0x82F63B78u

/* ---- portable slicing-by-8 ---------------------------------------------- */

static uint32_t klog_crc32c_table[8][256];

static inline uint32_t klog_load32le(const unsigned char *p)
{
    /* Byte-wise so it is endian-neutral; compilers fuse it into one load. */
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static void klog_crc32c_sw_init(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++)
            c = (c & 1u) ? (c >> 1) ^ KLOG_CRC32C_POLY : c >> 1;
        klog_crc32c_table[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = klog_crc32c_table[0][b];
        for (int t = 1; t < 8; t++) {
            c = (c >> 8) ^ klog_crc32c_table[0][c & 0xFFu];
            klog_crc32c_table[t][b] = c;
        }
    }
}

static uint32_t klog_crc32c_sw(uint32_t crc, const unsigned char *p, size_t n)
{
    const uint32_t (*t)[256] = (const uint32_t (*)[256])klog_crc32c_table;
    uint32_t c = ~crc;

    while (n && ((uintptr_t)p & 7u)) {
        c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFFu];
        n--;
    }
    while (n >= 8) {
        uint32_t lo = c ^ klog_load32le(p);
        uint32_t hi = klog_load32le(p + 4);
        c = t[7][lo & 0xFFu] ^ t[6][(lo >> 8) & 0xFFu] ^
            t[5][(lo >> 16) & 0xFFu] ^ t[4][lo >> 24] ^
            t[3][hi & 0xFFu] ^ t[2][(hi >> 8) & 0xFFu] ^
            t[1][(hi >> 16) & 0xFFu] ^ t[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFFu];
    return ~c;
}

/* ---- x86-64 SSE4.2 + PCLMULQDQ ------------------------------------------ */

static int klog_crc32c_have_hw = 0;

/* 64-bit only: the fast path needs crc32q, and i686 wheels are not built. */
#if defined(__x86_64__)
#include <immintrin.h>

/* GF(2) arithmetic on reflected 32-bit polynomials (bit 31 = x^0). */

/* a * b mod P. Only used at init, so clarity beats speed. */
static uint32_t klog_gf_mul(uint32_t a, uint32_t b)
{
    uint32_t prod = 0;
    for (int i = 31; i >= 0; i--) {
        if (a & (1u << i))
            prod ^= b;
        b = (b & 1u) ? (b >> 1) ^ KLOG_CRC32C_POLY : b >> 1; /* b *= x */
    }
    return prod;
}

/* x^n mod P. */
static uint32_t klog_gf_xpow(uint64_t n)
{
    uint32_t result = 0x80000000u; /* 1 */
    uint32_t base = 0x40000000u;   /* x */
    while (n) {
        if (n & 1u)
            result = klog_gf_mul(result, base);
        base = klog_gf_mul(base, base);
        n >>= 1;
    }
    return result;
}

/*
 * One crc32q has 3-cycle latency but 1-cycle throughput, so a single
 * dependency chain uses a third of the unit. We run three independent
 * streams over adjacent blocks of `len` bytes and merge them with a
 * carry-less multiply by x^(8*shift - 33) mod P: the reflected clmul adds
 * a factor x and the crc32q that reduces the product adds x^32, so the net
 * effect is appending `shift` zero bytes to that stream's CRC.
 * Several block sizes so medium inputs also get the 3-way benefit.
 */
#define KLOG_CRC32C_NLEVELS 4
static const size_t klog_crc32c_level_len[KLOG_CRC32C_NLEVELS] = {
    8192, 1024, 256, 64};
static uint64_t klog_crc32c_k1[KLOG_CRC32C_NLEVELS]; /* shift by len */
static uint64_t klog_crc32c_k2[KLOG_CRC32C_NLEVELS]; /* shift by 2*len */
static int klog_crc32c_have_clmul = 0;

static inline uint64_t klog_load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Serial path: the whole update when PCLMULQDQ is missing, and the tail. */
__attribute__((target("sse4.2"))) static inline uint64_t
klog_crc32c_hw_serial(uint64_t c, const unsigned char *p, size_t n)
{
    while (n >= 8) {
        c = _mm_crc32_u64(c, klog_load64(p));
        p += 8;
        n -= 8;
    }
    if (n & 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        c = _mm_crc32_u32((uint32_t)c, v);
        p += 4;
    }
    if (n & 2) {
        uint16_t v;
        memcpy(&v, p, 2);
        c = _mm_crc32_u16((uint32_t)c, v);
        p += 2;
    }
    if (n & 1)
        c = _mm_crc32_u8((uint32_t)c, *p);
    return c;
}

__attribute__((target("sse4.2,pclmul"))) static uint32_t
klog_crc32c_hw_clmul(uint32_t crc, const unsigned char *p, size_t n)
{
    uint64_t c = (uint32_t)~crc;

    if (n >= 3 * 64) {
        /* Align to 8 so no stream load straddles a cache line. */
        size_t mis = (size_t)(-(uintptr_t)p & 7u);
        if (mis & 1) {
            c = _mm_crc32_u8((uint32_t)c, *p);
            p += 1;
        }
        if (mis & 2) {
            uint16_t v;
            memcpy(&v, p, 2);
            c = _mm_crc32_u16((uint32_t)c, v);
            p += 2;
        }
        if (mis & 4) {
            uint32_t v;
            memcpy(&v, p, 4);
            c = _mm_crc32_u32((uint32_t)c, v);
            p += 4;
        }
        n -= mis;

        for (int lv = 0; lv < KLOG_CRC32C_NLEVELS; lv++) {
            const size_t len = klog_crc32c_level_len[lv];
            if (n < 3 * len)
                continue;
            const __m128i k1 = _mm_cvtsi64_si128((long long)klog_crc32c_k1[lv]);
            const __m128i k2 = _mm_cvtsi64_si128((long long)klog_crc32c_k2[lv]);
            do {
                uint64_t c0 = c, c1 = 0, c2 = 0;
                const unsigned char *end = p + len - 8;
                for (; p < end; p += 8) {
                    c0 = _mm_crc32_u64(c0, klog_load64(p));
                    c1 = _mm_crc32_u64(c1, klog_load64(p + len));
                    c2 = _mm_crc32_u64(c2, klog_load64(p + 2 * len));
                }
                c0 = _mm_crc32_u64(c0, klog_load64(p));
                c1 = _mm_crc32_u64(c1, klog_load64(p + len));
                /* Fold streams 0 and 1 into stream 2's last word; the
                 * crc32q on it does the reduction for all three. */
                __m128i m0 = _mm_clmulepi64_si128(
                    _mm_cvtsi64_si128((long long)c0), k2, 0x00);
                __m128i m1 = _mm_clmulepi64_si128(
                    _mm_cvtsi64_si128((long long)c1), k1, 0x00);
                uint64_t w = klog_load64(p + 2 * len) ^
                             (uint64_t)_mm_cvtsi128_si64(_mm_xor_si128(m0, m1));
                c = _mm_crc32_u64(c2, w);
                p += 2 * len + 8;
                n -= 3 * len;
            } while (n >= 3 * len);
        }
    }
    return ~(uint32_t)klog_crc32c_hw_serial(c, p, n);
}

__attribute__((target("sse4.2"))) static uint32_t
klog_crc32c_hw_plain(uint32_t crc, const unsigned char *p, size_t n)
{
    return ~(uint32_t)klog_crc32c_hw_serial((uint32_t)~crc, p, n);
}

static uint32_t klog_crc32c_hw(uint32_t crc, const unsigned char *p, size_t n)
{
    if (klog_crc32c_have_clmul)
        return klog_crc32c_hw_clmul(crc, p, n);
    return klog_crc32c_hw_plain(crc, p, n);
}

static void klog_crc32c_hw_init(void)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("sse4.2"))
        return;
    for (int lv = 0; lv < KLOG_CRC32C_NLEVELS; lv++) {
        uint64_t bits = 8 * (uint64_t)klog_crc32c_level_len[lv];
        klog_crc32c_k1[lv] = klog_gf_xpow(bits - 33);
        klog_crc32c_k2[lv] = klog_gf_xpow(2 * bits - 33);
    }
    klog_crc32c_have_clmul = __builtin_cpu_supports("pclmul") ? 1 : 0;
    klog_crc32c_have_hw = 1;
}

#else /* no hardware path on this architecture */

static uint32_t klog_crc32c_hw(uint32_t crc, const unsigned char *p, size_t n)
{
    /* Never reached: callers check klog_crc32c_have_hw first. */
    return klog_crc32c_sw(crc, p, n);
}

static void klog_crc32c_hw_init(void) {}

#endif

/* ---- dispatch ----------------------------------------------------------- */

/* Not thread-safe; run once at module import (under the GIL). */
static void klog_crc32c_init(void)
{
    klog_crc32c_sw_init();
    klog_crc32c_hw_init();
}

static inline uint32_t klog_crc32c_update(uint32_t crc, const unsigned char *p,
                                          size_t n)
{
    if (klog_crc32c_have_hw)
        return klog_crc32c_hw(crc, p, n);
    return klog_crc32c_sw(crc, p, n);
}

#endif /* KLOG_CRC32C_IMPL_H */

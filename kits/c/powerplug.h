// Powerplug's C kit: what a strategy would otherwise copy from one to the
// next, with the same rules as the Rust SDK's (powerplug_sdk::{config, cell,
// time, payout}) and the Python and JavaScript kits':
//
// - pp_setting(), pp_parse_u64/i64/bool: settings, each error naming its key;
// - PP_CELL: a cell's four words as a struct of named fields of given widths;
// - pp_local(): the hour, minute, weekday and day of a tick at an offset;
// - pp_books: the grid's money (income split on running totals, payouts in
//   quanta by output share, departed producers), kept in the state in the
//   Rust SDK's encoding (postcard), so the same books read the same in both.
//
// Header-only and world-agnostic: include it after the bindings' header.
// Every sum that could overflow is checked: a function that returns false
// has changed nothing the caller keeps, and the caller refuses the tick.
#ifndef POWERPLUG_H
#define POWERPLUG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// --- settings ----------------------------------------------------------------

typedef struct {
    const uint8_t *ptr;
    size_t len;
    bool set;
} pp_text;

// The last value of setting `key` in `input->config` (`.set` false if none).
#define pp_setting(input_, key_)                                                      \
    __extension__({                                                                   \
        pp_text found_ = {0};                                                         \
        size_t klen_ = strlen(key_);                                                  \
        for (size_t i_ = 0; i_ < (input_)->config.len; i_++) {                        \
            if ((input_)->config.ptr[i_].key.len == klen_ &&                          \
                memcmp((input_)->config.ptr[i_].key.ptr, (key_), klen_) == 0)         \
                found_ = (pp_text){(input_)->config.ptr[i_].value.ptr,                \
                                   (input_)->config.ptr[i_].value.len, true};         \
        }                                                                             \
        found_;                                                                       \
    })

static inline pp_text pp__trim(pp_text t) {
    while (t.len > 0 && t.ptr[0] == ' ') t.ptr++, t.len--;
    while (t.len > 0 && t.ptr[t.len - 1] == ' ') t.len--;
    return t;
}

// An unsigned integer (spaces around it allowed), or `fallback` if unset;
// false if it is not one.
static inline bool pp_parse_u64(pp_text t, uint64_t fallback, uint64_t *out) {
    *out = fallback;
    if (!t.set) return true;
    t = pp__trim(t);
    if (t.len == 0) return false;
    uint64_t n = 0;
    for (size_t i = 0; i < t.len; i++) {
        uint8_t c = t.ptr[i];
        if (c < '0' || c > '9') return false;
        if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, c - '0', &n)) return false;
    }
    *out = n;
    return true;
}

// A signed integer (an offset in minutes, a correction), or `fallback`.
static inline bool pp_parse_i64(pp_text t, int64_t fallback, int64_t *out) {
    *out = fallback;
    if (!t.set) return true;
    t = pp__trim(t);
    bool negative = t.len > 0 && t.ptr[0] == '-';
    if (t.len > 0 && (t.ptr[0] == '-' || t.ptr[0] == '+')) t.ptr++, t.len--;
    uint64_t n;
    if (!pp_parse_u64((pp_text){t.ptr, t.len, true}, 0, &n)) return false;
    if (n > (uint64_t)INT64_MAX + negative) return false;
    *out = negative ? (int64_t)(0 - n) : (int64_t)n;
    return true;
}

// `true` or `false`, or `fallback`.
static inline bool pp_parse_bool(pp_text t, bool fallback, bool *out) {
    *out = fallback;
    if (!t.set) return true;
    t = pp__trim(t);
    if (t.len == 4 && memcmp(t.ptr, "true", 4) == 0) return *out = true, true;
    if (t.len == 5 && memcmp(t.ptr, "false", 5) == 0) return *out = false, true;
    return false;
}

// --- typed cells -------------------------------------------------------------

// A cell as a struct: FIELDS(F) lists F(type, name, bits) in order, e.g.
//
//   #define CONSUMER(F) F(uint64_t, billed_wh, 64) F(uint32_t, carried_wh, 32) F(bool, loyal, 1)
//   PP_CELL(consumer_t, CONSUMER)
//
// gives `consumer_t`, `consumer_t_from(words)` and `consumer_t_to(&cell, words)`.
// Fields fill a word in order; one that does not fit in the rest of a word
// starts the next. `_to` returns false if a value does not fit its bits or the
// fields need more than four words. Signed types keep their sign in their bits.
// The layout is the books format: change a field, change the version.
#define PP_CELL(name, FIELDS)                                                       \
    typedef struct { FIELDS(PP__MEMBER) } name;                                     \
    __attribute__((unused)) static inline name name##_from(const uint64_t words[4]) { \
        name c_;                                                                    \
        memset(&c_, 0, sizeof c_);                                                  \
        unsigned word_ = 0, used_ = 0;                                              \
        FIELDS(PP__READ)                                                            \
        return c_;                                                                  \
    }                                                                               \
    __attribute__((unused)) static inline bool name##_to(const name *c_, uint64_t words[4]) { \
        uint64_t w_[4] = {0, 0, 0, 0};                                              \
        unsigned word_ = 0, used_ = 0;                                              \
        FIELDS(PP__WRITE)                                                           \
        memcpy(words, w_, sizeof w_);                                               \
        return true;                                                                \
    }
#define PP__MEMBER(type, field, bits) type field;
#define PP__SIGNED(type) ((type)-1 < (type)0)
#define PP__READ(type, field, bits)                                                 \
    if (!pp__place(&word_, &used_, bits)) return c_;                                \
    c_.field = (type)pp__get(words[word_], used_ - (bits), bits, PP__SIGNED(type));
#define PP__WRITE(type, field, bits)                                                \
    if (!pp__place(&word_, &used_, bits) ||                                         \
        !pp__put(&w_[word_], used_ - (bits), bits, PP__SIGNED(type),                \
                 PP__SIGNED(type) ? (uint64_t)(int64_t)c_->field : (uint64_t)c_->field)) \
        return false;

static inline bool pp__place(unsigned *word, unsigned *used, unsigned bits) {
    if (bits == 0 || bits > 64) return false;
    if (*used + bits > 64) *word += 1, *used = 0;
    *used += bits;
    return *word < 4;
}

static inline uint64_t pp__mask(unsigned bits) {
    return bits >= 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
}

static inline uint64_t pp__get(uint64_t word, unsigned shift, unsigned bits, bool is_signed) {
    uint64_t v = word >> shift & pp__mask(bits);
    if (is_signed && bits < 64 && v >> (bits - 1)) v |= ~pp__mask(bits); // sign-extend
    return v;
}

static inline bool pp__put(uint64_t *word, unsigned shift, unsigned bits, bool is_signed, uint64_t v) {
    if (bits < 64) {
        uint64_t high = is_signed ? (uint64_t)((int64_t)v >> (bits - 1)) : v >> bits;
        // Unsigned: nothing above the bits; signed: all sign bits alike.
        if (is_signed ? (high != 0 && high != UINT64_MAX) : high != 0) return false;
    }
    *word |= (v & pp__mask(bits)) << shift;
    return true;
}

// --- time --------------------------------------------------------------------

typedef struct {
    int64_t day;     // local days since 1970-01-01: the same all day long
    unsigned weekday; // 0 Monday … 6 Sunday
    unsigned hour, minute;
    bool is_weekend;
} pp_local;

// `now_ms` (UTC, as in a tick's input) at `offset_minutes` from UTC (60 for
// UTC+1, -300 for UTC-5).
static inline pp_local pp_local_at(uint64_t now_ms, int64_t offset_minutes) {
    const int64_t day_ms = 86400000;
    __int128 local = (__int128)now_ms + (__int128)offset_minutes * 60000;
    int64_t day = (int64_t)(local / day_ms), in_day = (int64_t)(local % day_ms);
    if (in_day < 0) day -= 1, in_day += day_ms;
    unsigned weekday = (unsigned)(((day + 3) % 7 + 7) % 7); // 1970-01-01 was a Thursday
    return (pp_local){day, weekday, (unsigned)(in_day / 3600000), (unsigned)(in_day / 60000 % 60),
                      weekday >= 5};
}

// --- the grid's money --------------------------------------------------------

// Producers get `part` of every `of` tokens consumers pay; it is paid out in
// whole `quantum`s, at most once per `interval_ms`.
typedef struct {
    uint64_t part, of, quantum, interval_ms;
} pp_rules;

static inline bool pp_rules_valid(const pp_rules *r) {
    return r->of > 0 && r->part <= r->of && r->quantum > 0;
}

// floor(amount * part / of): never more than `amount`.
static inline uint64_t pp_share(const pp_rules *r, uint64_t amount) {
    return (uint64_t)((unsigned __int128)amount * r->part / r->of);
}

typedef struct {
    uint32_t index;
    uint64_t output_wh, owed, received;
} pp_producer;

// The books: the Rust SDK's payout::Books, field for field.
typedef struct {
    uint64_t income, available, running_costs_requested, last_payout_ms;
    pp_producer *producers; // sorted by index
    size_t producers_len;
    uint64_t producers_received;
} pp_books;

static inline bool pp__varint(const uint8_t **at, const uint8_t *end, uint64_t *out) {
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (*at == end) return false;
        uint8_t b = *(*at)++;
        if (shift == 63 && b > 1) return false;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return *out = v, true;
    }
    return false;
}

// Reads the books from a state (empty: fresh books); false if it is not books.
static inline bool pp_books_load(pp_books *b, const uint8_t *bytes, size_t len) {
    memset(b, 0, sizeof *b);
    if (len == 0) return true;
    const uint8_t *at = bytes, *end = bytes + len;
    uint64_t n;
    if (!pp__varint(&at, end, &b->income) || !pp__varint(&at, end, &b->available) ||
        !pp__varint(&at, end, &b->running_costs_requested) ||
        !pp__varint(&at, end, &b->last_payout_ms) || !pp__varint(&at, end, &n) || n > len)
        return false;
    b->producers = calloc(n + 1, sizeof *b->producers);
    if (b->producers == NULL) return false;
    for (uint64_t i = 0; i < n; i++) {
        pp_producer *p = &b->producers[i];
        uint64_t index;
        if (!pp__varint(&at, end, &index) || index > UINT32_MAX || !pp__varint(&at, end, &p->output_wh) ||
            !pp__varint(&at, end, &p->owed) || !pp__varint(&at, end, &p->received))
            return false;
        p->index = (uint32_t)index;
    }
    b->producers_len = n;
    return pp__varint(&at, end, &b->producers_received) && at == end;
}

static inline void pp__put_varint(uint8_t **at, uint64_t v) {
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        *(*at)++ = b | (v ? 0x80 : 0);
    } while (v);
}

// The books as a state, from malloc (the decision's `state`).
static inline uint8_t *pp_books_save(const pp_books *b, size_t *len) {
    uint8_t *bytes = malloc(10 * (6 + 4 * b->producers_len) + 1), *at = bytes;
    if (bytes == NULL) return NULL;
    pp__put_varint(&at, b->income);
    pp__put_varint(&at, b->available);
    pp__put_varint(&at, b->running_costs_requested);
    pp__put_varint(&at, b->last_payout_ms);
    pp__put_varint(&at, b->producers_len);
    for (size_t i = 0; i < b->producers_len; i++) {
        const pp_producer *p = &b->producers[i];
        pp__put_varint(&at, p->index);
        pp__put_varint(&at, p->output_wh);
        pp__put_varint(&at, p->owed);
        pp__put_varint(&at, p->received);
    }
    pp__put_varint(&at, b->producers_received);
    *len = (size_t)(at - bytes);
    return bytes;
}

static inline size_t pp__producer_at(const pp_books *b, uint32_t index) {
    size_t lo = 0, hi = b->producers_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->producers[mid].index < index) lo = mid + 1; else hi = mid;
    }
    return lo;
}

// Books the running costs' part of the tokens a tick's bills request.
static inline bool pp_books_requested(pp_books *b, const pp_rules *r, uint64_t requested) {
    return !__builtin_add_overflow(b->running_costs_requested, requested - pp_share(r, requested),
                                   &b->running_costs_requested);
}

// A producer said goodbye: it is forgotten (a late confirmation will not bring it back).
static inline void pp_books_leave(pp_books *b, uint32_t index) {
    size_t at = pp__producer_at(b, index);
    if (at < b->producers_len && b->producers[at].index == index) {
        memmove(b->producers + at, b->producers + at + 1, (b->producers_len - at - 1) * sizeof *b->producers);
        b->producers_len--;
    }
}

// A producer's output, added to its lifetime total.
static inline bool pp_books_output(pp_books *b, uint32_t producer, uint64_t wh) {
    size_t at = pp__producer_at(b, producer);
    if (at == b->producers_len || b->producers[at].index != producer) {
        pp_producer *grown = realloc(b->producers, (b->producers_len + 1) * sizeof *grown);
        if (grown == NULL) return false;
        b->producers = grown;
        memmove(grown + at + 1, grown + at, (b->producers_len - at) * sizeof *grown);
        grown[at] = (pp_producer){producer, 0, 0, 0};
        b->producers_len++;
    }
    return !__builtin_add_overflow(b->producers[at].output_wh, wh, &b->producers[at].output_wh);
}

// A confirmed transfer: a consumer's payment (incoming), or a payout to
// `producer` confirmed (outgoing; `has_entity` false: nobody to credit).
static inline bool pp_books_transfer(pp_books *b, bool incoming, bool has_entity, uint32_t entity,
                                     uint64_t amount) {
    if (incoming) return !__builtin_add_overflow(b->income, amount, &b->income);
    size_t at = pp__producer_at(b, entity);
    if (has_entity && at < b->producers_len && b->producers[at].index == entity)
        return !__builtin_add_overflow(b->producers[at].received, amount, &b->producers[at].received);
    return true;
}

// Splits the income that came in since `income_before` (on running totals).
static inline void pp_books_split(pp_books *b, const pp_rules *r, uint64_t income_before) {
    uint64_t share = pp_share(r, b->income) - pp_share(r, income_before);
    b->available += share; // at most income, which did not overflow
    b->producers_received += share;
}

// If `interval_ms` has passed since the last payout, distributes whole
// quanta of what is available by lifetime output: writes up to
// `producers_len` (producer, amount) pairs and returns how many; `paid_out`
// gets their sum. What the floors leave stays available.
static inline size_t pp_books_pay_out(pp_books *b, const pp_rules *r, uint64_t now_ms, uint32_t *producer,
                                      uint64_t *amount, uint64_t *paid_out) {
    size_t n = 0;
    *paid_out = 0;
    if (now_ms < b->last_payout_ms || now_ms - b->last_payout_ms < r->interval_ms) return 0;
    b->last_payout_ms = now_ms;
    uint64_t distribution = b->available / r->quantum * r->quantum;
    unsigned __int128 total = 0;
    for (size_t i = 0; i < b->producers_len; i++) total += b->producers[i].output_wh;
    if (distribution == 0 || total == 0) return 0;
    for (size_t i = 0; i < b->producers_len; i++) {
        uint64_t a = (uint64_t)((unsigned __int128)distribution * b->producers[i].output_wh / total);
        if (a == 0) continue;
        b->producers[i].owed += a; // the owed never pass what came in
        producer[n] = b->producers[i].index;
        amount[n++] = a;
        *paid_out += a;
    }
    b->available -= *paid_out;
    return n;
}

static inline void pp_books_free(pp_books *b) {
    free(b->producers);
    b->producers = NULL;
}

#endif

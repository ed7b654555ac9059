// A weekend-rate grid strategy: a kWh costs less on Saturdays and Sundays (UTC).
//
// Rules (settings, with their defaults):
//
// - Each consumer's usage adds up in its cell. Every tick, each consumer with
//   new usage is billed for its *whole* kWh not yet billed, at the price of the
//   tick's day: `weekday-price` (5 tokens a kWh) Monday to Friday,
//   `weekend-price` (3) on Saturday and Sunday. The fraction of a kWh carries
//   over to a later tick.
// - Of all the money consumers have paid, `producer-share-percent` (80) belongs
//   to the producers, split by their share of all the output they reported
//   (a producer that left is dropped and its share goes to the others). What is
//   due is taken on the running totals, so rounding never loses a token: the
//   floors of the shares are paid at once, the remainder waits for a later tick.
//
// Cells, four words per consumer: [used Wh, billed Wh, tokens requested, tokens
// paid]. State: the bytes "weekend1", then tokens received and paid out in
// total, then (producer, Wh) pairs sorted by producer, all little-endian.
// build.sh declares the books format `weekend-rate@1`: the host hands this
// strategy only books of that format, so a state that does not read back is a
// bug, and the tick is refused rather than paid from it.
//
// C's unsigned arithmetic wraps silently: every sum that could overflow is
// checked and refuses the tick. Each tick runs in a fresh instance, so the input
// is never freed; everything in the decision comes from malloc.
#include <stdlib.h>
#include <string.h>

#include "grid_strategy.h"

typedef exports_powerplug_strategy_grid_grid_input_t input_t;
typedef exports_powerplug_strategy_grid_grid_decision_t decision_t;

#define WORDS 4
#define DAY_MS 86400000ull
#define MAGIC "weekend1"

enum { USED, BILLED, REQUESTED, PAID };

// A sorted array of entities and their four words: the cells this tick
// touches, or the producers' output in the state (one word used).
typedef struct {
    uint32_t *entity;
    uint64_t *words;
    size_t len, cap;
} table_t;

static size_t position(const uint32_t *entities, size_t len, uint32_t entity) {
    size_t lo = 0, hi = len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (entities[mid] < entity) lo = mid + 1; else hi = mid;
    }
    return lo;
}

// The words of `entity`, added (zeroed, or copied from `from` if it has them) if new.
static uint64_t *row(table_t *t, uint32_t entity, const powerplug_strategy_types_cell_batch_t *from) {
    size_t at = position(t->entity, t->len, entity);
    if (at < t->len && t->entity[at] == entity) return t->words + at * WORDS;
    if (t->len == t->cap) {
        t->cap = t->cap * 2 + 8;
        t->entity = realloc(t->entity, t->cap * sizeof *t->entity);
        t->words = realloc(t->words, t->cap * WORDS * sizeof *t->words);
        if (t->entity == NULL || t->words == NULL) abort(); // the host's memory limit
    }
    memmove(t->entity + at + 1, t->entity + at, (t->len - at) * sizeof *t->entity);
    memmove(t->words + (at + 1) * WORDS, t->words + at * WORDS, (t->len - at) * WORDS * sizeof *t->words);
    t->len++;
    t->entity[at] = entity;
    uint64_t *words = t->words + at * WORDS;
    memset(words, 0, WORDS * sizeof *words);
    if (from != NULL) {
        size_t known = position(from->entity.ptr, from->entity.len, entity);
        if (known < from->entity.len && from->entity.ptr[known] == entity)
            memcpy(words, from->words.ptr + known * WORDS, WORDS * sizeof *words);
    }
    return words;
}

static void drop(table_t *t, uint32_t entity) {
    size_t at = position(t->entity, t->len, entity);
    if (at == t->len || t->entity[at] != entity) return;
    memmove(t->entity + at, t->entity + at + 1, (t->len - at - 1) * sizeof *t->entity);
    memmove(t->words + at * WORDS, t->words + (at + 1) * WORDS, (t->len - at - 1) * WORDS * sizeof *t->words);
    t->len--;
}

typedef struct {
    uint64_t received, paid_out;
    table_t output; // word 0: the Wh each producer reported
} state_t;

static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static uint8_t *put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
    return p + 8;
}

// Reads the saved state; false if it is not one this strategy wrote.
static bool load(const grid_strategy_list_u8_t *data, state_t *s) {
    memset(s, 0, sizeof *s);
    if (data->len == 0) return true; // the first tick
    const size_t head = 8 + 16, pair = 12;
    if (data->len < head || memcmp(data->ptr, MAGIC, 8) != 0 || (data->len - head) % pair != 0) return false;
    s->received = get64(data->ptr + 8);
    s->paid_out = get64(data->ptr + 16);
    for (const uint8_t *p = data->ptr + head; p < data->ptr + data->len; p += pair) {
        uint32_t producer = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        row(&s->output, producer, NULL)[0] = get64(p + 4);
    }
    return true;
}

static grid_strategy_list_u8_t save(const state_t *s) {
    size_t len = 8 + 16 + s->output.len * 12;
    uint8_t *bytes = malloc(len), *p = bytes;
    memcpy(p, MAGIC, 8);
    p = put64(put64(p + 8, s->received), s->paid_out);
    for (size_t i = 0; i < s->output.len; i++) {
        for (int b = 0; b < 4; b++) *p++ = (uint8_t)(s->output.entity[i] >> (8 * b));
        p = put64(p, s->output.words[i * WORDS]);
    }
    return (grid_strategy_list_u8_t){bytes, len};
}

static bool refuse(grid_strategy_string_t *err, const char *why) {
    grid_strategy_string_dup(err, why);
    return false;
}

// An unsigned integer setting (the last one named `key`), or `fallback`; false if malformed.
static bool setting(const input_t *input, const char *key, uint64_t fallback, uint64_t *out) {
    const grid_strategy_string_t *value = NULL;
    for (size_t i = 0; i < input->config.len; i++) {
        const grid_strategy_string_t *k = &input->config.ptr[i].key;
        if (k->len == strlen(key) && memcmp(k->ptr, key, k->len) == 0) value = &input->config.ptr[i].value;
    }
    *out = fallback;
    if (value == NULL) return true;
    size_t i = 0, end = value->len;
    while (i < end && value->ptr[i] == ' ') i++;
    while (end > i && value->ptr[end - 1] == ' ') end--;
    if (i == end) return false;
    for (*out = 0; i < end; i++) {
        uint8_t c = value->ptr[i];
        if (c < '0' || c > '9' || __builtin_mul_overflow(*out, 10, out) || __builtin_add_overflow(*out, c - '0', out))
            return false;
    }
    return true;
}

static void metric(decision_t *d, const char *name, int64_t value) {
    exports_powerplug_strategy_grid_metric_t *m = &d->metrics.ptr[d->metrics.len++];
    grid_strategy_string_dup(&m->name, name);
    m->value = value;
}

// a - b as a metric (negative when b is larger), saturating at 64 bits.
static int64_t difference(uint64_t a, uint64_t b) {
    if (a >= b) return a - b > INT64_MAX ? INT64_MAX : (int64_t)(a - b);
    return b - a > INT64_MAX ? INT64_MIN : -(int64_t)(b - a);
}

// 1970-01-01 was a Thursday: day 0 is weekday 4 (Sunday is 0).
static bool weekend(uint64_t now_ms) {
    uint64_t weekday = (now_ms / DAY_MS + 4) % 7;
    return weekday == 0 || weekday == 6;
}

bool exports_powerplug_strategy_grid_tick(input_t *input, decision_t *d, grid_strategy_string_t *err) {
    uint64_t weekday_price, weekend_price, share;
    if (!setting(input, "weekday-price", 5, &weekday_price))
        return refuse(err, "config `weekday-price`: expected an unsigned integer");
    if (!setting(input, "weekend-price", 3, &weekend_price))
        return refuse(err, "config `weekend-price`: expected an unsigned integer");
    if (!setting(input, "producer-share-percent", 80, &share) || share > 100)
        return refuse(err, "config `producer-share-percent`: an integer from 0 to 100");
    state_t state;
    if (!load(&input->state, &state)) return refuse(err, "state: not one this strategy saved");
    uint64_t price = weekend(input->now_ms) ? weekend_price : weekday_price;
    memset(d, 0, sizeof *d);
    table_t cells = {0};

    for (size_t i = 0; i < input->usage.consumer.len; i++) {
        uint64_t *cell = row(&cells, input->usage.consumer.ptr[i], &input->cells);
        if (__builtin_add_overflow(cell[USED], input->usage.wh.ptr[i], &cell[USED]))
            return refuse(err, "a consumer's used Wh overflow 64 bits");
    }

    // Bills: only consumers with usage are in `cells` so far.
    exports_powerplug_strategy_grid_payment_request_batch_t *r = &d->payment_requests;
    r->consumer.ptr = malloc(cells.len * sizeof(uint32_t) + 1);
    r->wh.ptr = malloc(cells.len * sizeof(uint64_t) + 1);
    r->owed.ptr = malloc(cells.len * sizeof(uint64_t) + 1);
    uint64_t billed_wh = 0, requested = 0;
    for (size_t i = 0; i < cells.len; i++) {
        uint64_t *cell = cells.words + i * WORDS;
        uint64_t kwh = (cell[USED] - cell[BILLED]) / 1000, owed;
        if (kwh == 0) continue;
        if (__builtin_mul_overflow(kwh, price, &owed) || __builtin_add_overflow(cell[REQUESTED], owed, &cell[REQUESTED]) ||
            __builtin_add_overflow(requested, owed, &requested) || __builtin_add_overflow(billed_wh, kwh * 1000, &billed_wh))
            return refuse(err, "a bill overflows 64 bits");
        cell[BILLED] += kwh * 1000; // at most the used Wh: no overflow
        r->consumer.ptr[r->consumer.len++] = cells.entity[i];
        r->wh.ptr[r->wh.len++] = kwh * 1000;
        r->owed.ptr[r->owed.len++] = owed;
    }

    uint64_t income = 0;
    for (size_t i = 0; i < input->transfers.len; i++) {
        const exports_powerplug_strategy_grid_transfer_t *t = &input->transfers.ptr[i];
        if (!t->incoming) continue;
        if (__builtin_add_overflow(income, t->amount, &income)) return refuse(err, "income overflows 64 bits");
        if (t->entity.is_some) {
            uint64_t *cell = row(&cells, t->entity.val, &input->cells);
            if (__builtin_add_overflow(cell[PAID], t->amount, &cell[PAID]))
                return refuse(err, "a consumer's payments overflow 64 bits");
        }
    }
    if (__builtin_add_overflow(state.received, income, &state.received)) return refuse(err, "income overflows 64 bits");

    for (size_t i = 0; i < input->left.len; i++) drop(&state.output, input->left.ptr[i]);
    for (size_t i = 0; i < input->output.len; i++) {
        uint64_t *wh = row(&state.output, input->output.ptr[i].producer, NULL);
        if (__builtin_add_overflow(wh[0], input->output.ptr[i].wh, &wh[0]))
            return refuse(err, "a producer's output overflows 64 bits");
    }

    // Pay what is due to the producers and not paid yet, by share of output.
    // The producers' part is floor(received * share / 100), without overflow.
    uint64_t part = state.received / 100 * share + state.received % 100 * share / 100;
    uint64_t due = part > state.paid_out ? part - state.paid_out : 0, total = 0, paid = 0;
    for (size_t i = 0; i < state.output.len; i++)
        if (__builtin_add_overflow(total, state.output.words[i * WORDS], &total))
            return refuse(err, "the total output overflows 64 bits");
    d->payouts.ptr = malloc(state.output.len * sizeof *d->payouts.ptr + 1);
    for (size_t i = 0; due > 0 && total > 0 && i < state.output.len; i++) {
        uint64_t amount = (uint64_t)((unsigned __int128)due * state.output.words[i * WORDS] / total);
        if (amount == 0) continue;
        d->payouts.ptr[d->payouts.len++] = (exports_powerplug_strategy_grid_payout_t){state.output.entity[i], amount};
        paid += amount; // the floors of shares of `due`: at most `due`
    }
    state.paid_out += paid;

    d->state = save(&state);
    d->cells.entity = (grid_strategy_list_u32_t){cells.entity, cells.len};
    d->cells.words = (grid_strategy_list_u64_t){cells.words, cells.len * WORDS};
    d->metrics.ptr = malloc(7 * sizeof *d->metrics.ptr);
    metric(d, "price-per-kwh", difference(price, 0));
    metric(d, "billed-wh", difference(billed_wh, 0));
    metric(d, "requested", difference(requested, 0));
    metric(d, "income", difference(income, 0));
    metric(d, "paid-out", difference(paid, 0));
    // Named as the basic grid names them, so `powerplug demo` can check that
    // what consumers paid = running costs + paid out + available (negative if
    // the operator lowered the producers' share below what was paid out).
    metric(d, "running-costs-received", difference(state.received, part));
    metric(d, "available", difference(part, state.paid_out));
    return true;
}

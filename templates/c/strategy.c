// {{name}}: a grid strategy. It bills each consumer `price-per-kwh` tokens (5
// unless configured) for every whole kWh it used; the fraction carries over.
//
// Cells, four words per consumer: [billed Wh, Wh not billed yet, -, -]: the
// books format `{{name}}@1` that build.sh declares (the host hands this
// strategy only books of that format; change the version there if you change
// what a word means). All money and energy are integers (tokens, Wh), and C's
// unsigned arithmetic wraps silently: every sum that could overflow is checked
// and refuses the tick instead. The strategy keeps no state of its own and pays
// no producer: see examples/weekend-rate-c in the Powerplug checkout for both,
// and docs/strategy-guide.md for the contract.
//
// Memory: each tick runs in a fresh instance that is thrown away after it, so
// the input is never freed here. Everything in the decision, strings included,
// must come from malloc (the bindings free it after the host has read it).
#include <stdlib.h>
#include <string.h>

#include "grid_strategy.h"

typedef exports_powerplug_strategy_grid_grid_input_t input_t;
typedef exports_powerplug_strategy_grid_grid_decision_t decision_t;

#define WORDS 4

// Refuses the tick: the host applies nothing and reports `why`.
static bool refuse(grid_strategy_string_t *err, const char *why) {
    grid_strategy_string_dup(err, why);
    return false;
}

// The last setting named `key`, or NULL.
static const grid_strategy_string_t *setting(const input_t *input, const char *key) {
    const grid_strategy_string_t *found = NULL;
    size_t len = strlen(key);
    for (size_t i = 0; i < input->config.len; i++) {
        const grid_strategy_string_t *k = &input->config.ptr[i].key;
        if (k->len == len && memcmp(k->ptr, key, len) == 0) found = &input->config.ptr[i].value;
    }
    return found;
}

// An unsigned integer setting (spaces around it allowed); false if it is not one.
static bool setting_u64(const input_t *input, const char *key, uint64_t fallback, uint64_t *out) {
    const grid_strategy_string_t *value = setting(input, key);
    *out = fallback;
    if (value == NULL) return true;
    size_t i = 0, end = value->len;
    while (i < end && value->ptr[i] == ' ') i++;
    while (end > i && value->ptr[end - 1] == ' ') end--;
    if (i == end) return false;
    uint64_t n = 0;
    for (; i < end; i++) {
        uint8_t c = value->ptr[i];
        if (c < '0' || c > '9') return false;
        if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, c - '0', &n)) return false;
    }
    *out = n;
    return true;
}

static void metric(decision_t *d, const char *name, int64_t value) {
    exports_powerplug_strategy_grid_metric_t *m = &d->metrics.ptr[d->metrics.len++];
    grid_strategy_string_dup(&m->name, name);
    m->value = value;
}

// The position of `entity` in the sorted `entities[0..len)`, or where it would go.
static size_t find(const uint32_t *entities, size_t len, uint32_t entity) {
    size_t lo = 0, hi = len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (entities[mid] < entity) lo = mid + 1; else hi = mid;
    }
    return lo;
}

bool exports_powerplug_strategy_grid_tick(input_t *input, decision_t *d, grid_strategy_string_t *err) {
    uint64_t price;
    if (!setting_u64(input, "price-per-kwh", 5, &price))
        return refuse(err, "config `price-per-kwh`: expected an unsigned integer");
    memset(d, 0, sizeof *d);

    // The consumers with usage this tick, sorted and distinct, with their cells:
    // the host sends the cells of every entity this tick mentions (sorted by
    // entity); a consumer without one starts from zeros.
    size_t n = input->usage.consumer.len, changed = 0;
    uint32_t *entity = malloc(n * sizeof *entity + 1);
    uint64_t *words = calloc(n * WORDS + 1, sizeof *words);
    for (size_t i = 0; i < n; i++) {
        uint32_t consumer = input->usage.consumer.ptr[i];
        size_t at = find(entity, changed, consumer);
        if (at < changed && entity[at] == consumer) continue;
        memmove(entity + at + 1, entity + at, (changed - at) * sizeof *entity);
        memmove(words + (at + 1) * WORDS, words + at * WORDS, (changed - at) * WORDS * sizeof *words);
        entity[at] = consumer;
        memset(words + at * WORDS, 0, WORDS * sizeof *words);
        const powerplug_strategy_types_cell_batch_t *cells = &input->cells;
        size_t known = find(cells->entity.ptr, cells->entity.len, consumer);
        if (known < cells->entity.len && cells->entity.ptr[known] == consumer)
            memcpy(words + at * WORDS, cells->words.ptr + known * WORDS, WORDS * sizeof *words);
        changed++;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t *cell = words + find(entity, changed, input->usage.consumer.ptr[i]) * WORDS;
        if (__builtin_add_overflow(cell[1], input->usage.wh.ptr[i], &cell[1]))
            return refuse(err, "a consumer's unbilled Wh overflow 64 bits");
    }

    exports_powerplug_strategy_grid_payment_request_batch_t *r = &d->payment_requests;
    r->consumer.ptr = malloc(changed * sizeof(uint32_t) + 1);
    r->wh.ptr = malloc(changed * sizeof(uint64_t) + 1);
    r->owed.ptr = malloc(changed * sizeof(uint64_t) + 1);
    uint64_t billed_wh = 0, requested = 0;
    for (size_t i = 0; i < changed; i++) {
        uint64_t *cell = words + i * WORDS;
        uint64_t kwh = cell[1] / 1000, owed;
        cell[1] %= 1000;
        cell[0] += kwh * 1000; // below the unbilled Wh it came from: no overflow
        if (kwh == 0) continue;
        if (__builtin_mul_overflow(kwh, price, &owed) || __builtin_add_overflow(requested, owed, &requested))
            return refuse(err, "a bill overflows 64 bits");
        if (__builtin_add_overflow(billed_wh, kwh * 1000, &billed_wh))
            return refuse(err, "the billed Wh overflow 64 bits");
        r->consumer.ptr[r->consumer.len++] = entity[i];
        r->wh.ptr[r->wh.len++] = kwh * 1000;
        r->owed.ptr[r->owed.len++] = owed;
    }

    d->cells.entity = (grid_strategy_list_u32_t){entity, changed};
    d->cells.words = (grid_strategy_list_u64_t){words, changed * WORDS};
    d->metrics.ptr = malloc(2 * sizeof *d->metrics.ptr);
    metric(d, "billed-wh", (int64_t)billed_wh);
    metric(d, "requested", (int64_t)requested);
    return true;
}

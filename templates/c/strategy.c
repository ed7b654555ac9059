// {{name}}: a grid strategy. It bills each consumer `price-per-kwh` tokens (5
// unless configured) for every whole kWh it used; the fraction carries over.
// Of what consumers pay, `producer-tokens-per-kwh` (4) of every
// `price-per-kwh` goes to the producers, paid out by their share of the
// output (the kit's pp_books).
//
// Cells: a consumer_t per consumer (below), the books format `{{name}}@1`
// that build.sh declares (the host hands this strategy only books of that
// format; change the version there if you change a field). State: the money
// books. The kit (kit/c/powerplug.h) holds the settings, cells, time and money
// helpers; docs/strategy-guide.md in the Powerplug checkout, the contract.
// All money and energy are integers (tokens, Wh), and C's unsigned arithmetic
// wraps silently: every sum that could overflow is checked and refuses the
// tick instead.
//
// Memory: each tick runs in a fresh instance that is thrown away after it, so
// the input is never freed here. Everything in the decision, strings included,
// must come from malloc (the bindings free it after the host has read it).
#include <stdlib.h>
#include <string.h>

#include "grid_strategy.h"
#include "powerplug.h"

typedef exports_powerplug_strategy_grid_grid_input_t input_t;
typedef exports_powerplug_strategy_grid_grid_decision_t decision_t;

#define CONSUMER(F) F(uint64_t, billed_wh, 64) F(uint64_t, carried_wh, 64) F(uint64_t, owed, 64) F(uint64_t, paid, 64)
PP_CELL(consumer_t, CONSUMER)

#define WORDS 4

// Refuses the tick: the host applies nothing and reports `why`.
static bool refuse(grid_strategy_string_t *err, const char *why) {
    grid_strategy_string_dup(err, why);
    return false;
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

// The cells this tick changes: sorted entities and their words, each
// starting from the cell the host sent (zeros if none).
typedef struct {
    uint32_t *entity;
    uint64_t *words;
    size_t len;
} touched_t;

static uint64_t *touch(touched_t *t, const input_t *input, uint32_t entity) {
    size_t at = find(t->entity, t->len, entity);
    if (at < t->len && t->entity[at] == entity) return t->words + at * WORDS;
    memmove(t->entity + at + 1, t->entity + at, (t->len - at) * sizeof *t->entity);
    memmove(t->words + (at + 1) * WORDS, t->words + at * WORDS, (t->len - at) * WORDS * sizeof *t->words);
    t->entity[at] = entity;
    memset(t->words + at * WORDS, 0, WORDS * sizeof *t->words);
    const powerplug_strategy_types_cell_batch_t *cells = &input->cells;
    size_t known = find(cells->entity.ptr, cells->entity.len, entity);
    if (known < cells->entity.len && cells->entity.ptr[known] == entity)
        memcpy(t->words + at * WORDS, cells->words.ptr + known * WORDS, WORDS * sizeof *t->words);
    t->len++;
    return t->words + at * WORDS;
}

bool exports_powerplug_strategy_grid_tick(input_t *input, decision_t *d, grid_strategy_string_t *err) {
    uint64_t price, producers;
    if (!pp_parse_u64(pp_setting(input, "price-per-kwh"), 5, &price))
        return refuse(err, "config `price-per-kwh`: expected an unsigned integer");
    if (!pp_parse_u64(pp_setting(input, "producer-tokens-per-kwh"), 4, &producers))
        return refuse(err, "config `producer-tokens-per-kwh`: expected an unsigned integer");
    pp_rules rules = {producers, price, 40, 10000};
    if (!pp_parse_u64(pp_setting(input, "payout-quantum"), 40, &rules.quantum) ||
        !pp_parse_u64(pp_setting(input, "payout-interval-ms"), 10000, &rules.interval_ms) ||
        !pp_rules_valid(&rules))
        return refuse(err, "config: `producer-tokens-per-kwh` at most a non-zero `price-per-kwh`, "
                           "`payout-quantum` at least 1, `payout-interval-ms` an unsigned integer");
    pp_books books;
    if (!pp_books_load(&books, input->state.ptr, input->state.len))
        return refuse(err, "state: cannot read the books");
    memset(d, 0, sizeof *d);

    // Usage into the cells, then one request per consumer with whole kWh.
    size_t n = input->usage.consumer.len + input->transfers.len;
    touched_t t = {malloc(n * sizeof(uint32_t) + 1), calloc(n * WORDS + 1, sizeof(uint64_t)), 0};
    for (size_t i = 0; i < input->usage.consumer.len; i++) {
        uint64_t *words = touch(&t, input, input->usage.consumer.ptr[i]);
        consumer_t c = consumer_t_from(words);
        if (__builtin_add_overflow(c.carried_wh, input->usage.wh.ptr[i], &c.carried_wh))
            return refuse(err, "a consumer's unbilled Wh overflow 64 bits");
        consumer_t_to(&c, words);
    }
    exports_powerplug_strategy_grid_payment_request_batch_t *r = &d->payment_requests;
    r->consumer.ptr = malloc(t.len * sizeof(uint32_t) + 1);
    r->wh.ptr = malloc(t.len * sizeof(uint64_t) + 1);
    r->owed.ptr = malloc(t.len * sizeof(uint64_t) + 1);
    uint64_t billed_wh = 0, requested = 0;
    for (size_t i = 0; i < t.len; i++) {
        consumer_t c = consumer_t_from(t.words + i * WORDS);
        uint64_t kwh = c.carried_wh / 1000, owed;
        c.carried_wh %= 1000;
        if (kwh == 0) continue;
        if (__builtin_mul_overflow(kwh, price, &owed) || __builtin_add_overflow(requested, owed, &requested) ||
            __builtin_add_overflow(c.owed, owed, &c.owed) ||
            __builtin_add_overflow(c.billed_wh, kwh * 1000, &c.billed_wh) ||
            __builtin_add_overflow(billed_wh, kwh * 1000, &billed_wh))
            return refuse(err, "a bill overflows 64 bits");
        consumer_t_to(&c, t.words + i * WORDS);
        r->consumer.ptr[r->consumer.len++] = t.entity[i];
        r->wh.ptr[r->wh.len++] = kwh * 1000;
        r->owed.ptr[r->owed.len++] = owed;
    }
    if (!pp_books_requested(&books, &rules, requested)) return refuse(err, "running costs overflow 64 bits");

    // The books: producers that left, output, confirmed transfers, payouts.
    for (size_t i = 0; i < input->left.len; i++) pp_books_leave(&books, input->left.ptr[i]);
    for (size_t i = 0; i < input->output.len; i++)
        if (!pp_books_output(&books, input->output.ptr[i].producer, input->output.ptr[i].wh))
            return refuse(err, "a producer's output overflows 64 bits");
    uint64_t income_before = books.income;
    for (size_t i = 0; i < input->transfers.len; i++) {
        const powerplug_strategy_types_transfer_t *tr = &input->transfers.ptr[i];
        if (!pp_books_transfer(&books, tr->incoming, tr->entity.is_some, tr->entity.val, tr->amount))
            return refuse(err, "income overflows 64 bits");
        if (tr->incoming && tr->entity.is_some) {
            uint64_t *words = touch(&t, input, tr->entity.val);
            consumer_t c = consumer_t_from(words);
            if (__builtin_add_overflow(c.paid, tr->amount, &c.paid)) return refuse(err, "paid overflows 64 bits");
            consumer_t_to(&c, words);
        }
    }
    pp_books_split(&books, &rules, income_before);
    d->payouts.ptr = malloc(books.producers_len * sizeof *d->payouts.ptr + 1);
    uint32_t *to = malloc(books.producers_len * sizeof *to + 1);
    uint64_t *amount = malloc(books.producers_len * sizeof *amount + 1), paid_out;
    size_t payouts = pp_books_pay_out(&books, &rules, input->now_ms, to, amount, &paid_out);
    for (size_t i = 0; i < payouts; i++)
        d->payouts.ptr[d->payouts.len++] = (exports_powerplug_strategy_grid_payout_t){to[i], amount[i]};
    free(to);
    free(amount);

    // Only the cells that changed go back.
    size_t kept = 0;
    for (size_t i = 0; i < t.len; i++) {
        uint64_t before[WORDS] = {0};
        size_t known = find(input->cells.entity.ptr, input->cells.entity.len, t.entity[i]);
        if (known < input->cells.entity.len && input->cells.entity.ptr[known] == t.entity[i])
            memcpy(before, input->cells.words.ptr + known * WORDS, sizeof before);
        if (memcmp(before, t.words + i * WORDS, sizeof before) == 0) continue;
        t.entity[kept] = t.entity[i];
        memmove(t.words + kept * WORDS, t.words + i * WORDS, sizeof before);
        kept++;
    }
    t.len = kept;
    d->cells.entity = (grid_strategy_list_u32_t){t.entity, t.len};
    d->cells.words = (grid_strategy_list_u64_t){t.words, t.len * WORDS};
    size_t state_len;
    d->state.ptr = pp_books_save(&books, &state_len);
    d->state.len = state_len;
    d->metrics.ptr = malloc(6 * sizeof *d->metrics.ptr);
    metric(d, "billed-wh", (int64_t)billed_wh);
    metric(d, "requested", (int64_t)requested);
    metric(d, "income", (int64_t)(books.income - income_before));
    metric(d, "paid-out", (int64_t)paid_out);
    metric(d, "available", (int64_t)books.available);
    metric(d, "running-costs-received", (int64_t)(books.income - books.producers_received));
    pp_books_free(&books);
    return true;
}

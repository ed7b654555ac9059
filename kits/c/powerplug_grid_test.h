// Powerplug's C kit: native tests of a grid strategy as the host runs it.
// Include in test.c after grid_strategy.h and powerplug.h. The harness runs
// `exports_powerplug_strategy_grid_tick` tick after tick, every `step_ms`
// from 2026-01-01T00:00Z: state and cells carried over, each input holding the
// cells of exactly the entities it mentions, consumers paying their bills at
// the next tick (`pays_bills`), payouts confirmed at the next tick. Each
// decision is held to the host's rules before it applies — sums within 64
// bits, bills only to consumers and never past the Wh a consumer reported,
// payouts only to producers, of at least 1 token, within the grid's wallet —
// and a tick the host would refuse returns false with `why` set, applying
// nothing (the news waits for the next tick). Fixed sizes keep it simple:
// PP_GH_ENTITIES entities, PP_GH_NEWS readings or transfers per tick.
#ifndef POWERPLUG_GRID_TEST_H
#define POWERPLUG_GRID_TEST_H

#include <stdarg.h>
#include <stdio.h>

#define PP_GH_ENTITIES 64
#define PP_GH_NEWS 256

typedef exports_powerplug_strategy_grid_grid_input_t pp_gh_input;
typedef exports_powerplug_strategy_grid_grid_decision_t pp_gh_decision;

typedef struct {
    uint64_t now_ms, step_ms, funds;
    bool pays_bills;
    char why[512];
    exports_powerplug_strategy_grid_setting_t settings[16];
    size_t settings_len;
    uint8_t *state;
    size_t state_len;
    uint64_t cells[PP_GH_ENTITIES][4];
    // Per entity: 0 none (or left), 1 consumer, 2 producer; lifetime Wh reported and billed.
    uint8_t kind[PP_GH_ENTITIES];
    uint64_t reported[PP_GH_ENTITIES], billed[PP_GH_ENTITIES];
    char ids[PP_GH_ENTITIES][16];
    uint32_t next;
    exports_powerplug_strategy_grid_entity_t joined[PP_GH_ENTITIES];
    uint32_t left[PP_GH_ENTITIES];
    size_t joined_len, left_len;
    uint32_t usage_consumer[PP_GH_NEWS];
    uint64_t usage_start[PP_GH_NEWS], usage_end[PP_GH_NEWS], usage_wh[PP_GH_NEWS];
    size_t usage_len;
    exports_powerplug_strategy_grid_output_t output[PP_GH_NEWS];
    size_t output_len;
    powerplug_strategy_types_transfer_t transfers[PP_GH_NEWS];
    size_t transfers_len;
} pp_grid_harness;

static inline void pp_gh_init(pp_grid_harness *h) {
    memset(h, 0, sizeof *h);
    h->now_ms = 1767225600000ull;
    h->step_ms = 15000;
    h->pays_bills = true;
}

// A setting, as in the grid's config file (the last of a key wins); `key`
// and `value` must outlive the harness (string literals do).
static inline void pp_gh_setting(pp_grid_harness *h, const char *key, const char *value) {
    if (h->settings_len < 16)
        h->settings[h->settings_len++] = (exports_powerplug_strategy_grid_setting_t){
            {(uint8_t *)key, strlen(key)}, {(uint8_t *)value, strlen(value)}};
}

static inline uint32_t pp__gh_join(pp_grid_harness *h, uint8_t kind) {
    uint32_t index = h->next++;
    h->kind[index] = kind;
    snprintf(h->ids[index], sizeof h->ids[index], "%s-%u", kind == 1 ? "consumer" : "producer", index);
    h->joined[h->joined_len++] = (exports_powerplug_strategy_grid_entity_t){
        index, kind == 1 ? POWERPLUG_STRATEGY_TYPES_ENTITY_KIND_CONSUMER : POWERPLUG_STRATEGY_TYPES_ENTITY_KIND_PRODUCER,
        {(uint8_t *)h->ids[index], strlen(h->ids[index])}};
    return index;
}

static inline uint32_t pp_gh_consumer(pp_grid_harness *h) { return pp__gh_join(h, 1); }
static inline uint32_t pp_gh_producer(pp_grid_harness *h) { return pp__gh_join(h, 2); }

// The entity says goodbye (in the next tick's `left`).
static inline void pp_gh_leave(pp_grid_harness *h, uint32_t index) {
    if (index < PP_GH_ENTITIES && h->kind[index]) h->kind[index] = 0, h->left[h->left_len++] = index;
}

// `consumer` used `wh` in the step before the next tick.
static inline void pp_gh_usage(pp_grid_harness *h, uint32_t consumer, uint64_t wh) {
    size_t i = h->usage_len++;
    h->usage_consumer[i] = consumer;
    h->usage_start[i] = h->now_ms;
    h->usage_end[i] = h->now_ms + h->step_ms;
    h->usage_wh[i] = wh;
}

// `producer` delivered `wh` in the step before the next tick, asking `price`.
static inline void pp_gh_output(pp_grid_harness *h, uint32_t producer, uint64_t wh, uint64_t price) {
    h->output[h->output_len++] =
        (exports_powerplug_strategy_grid_output_t){producer, h->now_ms, h->now_ms + h->step_ms, wh, price};
}

// `consumer` pays `amount` into the grid's wallet (confirmed at the next tick).
static inline void pp_gh_pays(pp_grid_harness *h, uint32_t consumer, uint64_t amount) {
    h->funds += amount;
    h->transfers[h->transfers_len++] = (powerplug_strategy_types_transfer_t){{true, consumer}, amount, h->now_ms, true};
}

// The stored cell of `entity`.
static inline const uint64_t *pp_gh_cell(const pp_grid_harness *h, uint32_t entity) {
    return h->cells[entity];
}

__attribute__((format(printf, 3, 4))) static inline bool pp__gh_refuse(pp_grid_harness *h, pp_gh_decision *d,
                                                                         const char *why, ...) {
    va_list args;
    va_start(args, why);
    vsnprintf(h->why, sizeof h->why, why, args);
    va_end(args);
    exports_powerplug_strategy_grid_grid_decision_free(d);
    return false;
}

// Runs the next tick. On success `*d` is the decision, applied (free it with
// exports_powerplug_strategy_grid_grid_decision_free); on false, `why` says
// what the strategy refused or the host would refuse, and nothing applied.
static inline bool pp_gh_tick(pp_grid_harness *h, pp_gh_decision *d) {
    h->now_ms += h->step_ms;
    // The mentioned entities, sorted and once each, with their cells.
    bool mentioned[PP_GH_ENTITIES] = {0};
    for (size_t i = 0; i < h->usage_len; i++) mentioned[h->usage_consumer[i]] = true;
    for (size_t i = 0; i < h->output_len; i++) mentioned[h->output[i].producer] = true;
    for (size_t i = 0; i < h->transfers_len; i++)
        if (h->transfers[i].entity.is_some) mentioned[h->transfers[i].entity.val] = true;
    uint32_t entity[PP_GH_ENTITIES];
    uint64_t words[PP_GH_ENTITIES * 4];
    size_t n = 0;
    for (uint32_t e = 0; e < PP_GH_ENTITIES; e++)
        if (mentioned[e]) entity[n] = e, memcpy(words + 4 * n, h->cells[e], sizeof h->cells[e]), n++;
    // Usage sorted by consumer, as the host sends it.
    size_t order[PP_GH_NEWS];
    for (size_t i = 0; i < h->usage_len; i++) order[i] = i;
    for (size_t i = 1; i < h->usage_len; i++)
        for (size_t j = i; j > 0 && h->usage_consumer[order[j - 1]] > h->usage_consumer[order[j]]; j--) {
            size_t t = order[j];
            order[j] = order[j - 1], order[j - 1] = t;
        }
    uint32_t consumer[PP_GH_NEWS];
    uint64_t start[PP_GH_NEWS], end[PP_GH_NEWS], wh[PP_GH_NEWS];
    for (size_t i = 0; i < h->usage_len; i++)
        consumer[i] = h->usage_consumer[order[i]], start[i] = h->usage_start[order[i]],
        end[i] = h->usage_end[order[i]], wh[i] = h->usage_wh[order[i]];

    pp_gh_input input = {0};
    input.now_ms = h->now_ms;
    input.config = (exports_powerplug_strategy_grid_list_setting_t){h->settings, h->settings_len};
    input.state = (grid_strategy_list_u8_t){h->state, h->state_len};
    input.joined = (exports_powerplug_strategy_grid_list_entity_t){h->joined, h->joined_len};
    input.left = (grid_strategy_list_u32_t){h->left, h->left_len};
    input.cells.entity = (grid_strategy_list_u32_t){entity, n};
    input.cells.words = (grid_strategy_list_u64_t){words, 4 * n};
    input.usage.consumer = (grid_strategy_list_u32_t){consumer, h->usage_len};
    input.usage.start_ms = (grid_strategy_list_u64_t){start, h->usage_len};
    input.usage.end_ms = (grid_strategy_list_u64_t){end, h->usage_len};
    input.usage.wh = (grid_strategy_list_u64_t){wh, h->usage_len};
    input.output = (exports_powerplug_strategy_grid_list_output_t){h->output, h->output_len};
    input.transfers = (exports_powerplug_strategy_grid_list_transfer_t){h->transfers, h->transfers_len};
    grid_strategy_string_t err;
    if (!exports_powerplug_strategy_grid_tick(&input, d, &err)) {
        snprintf(h->why, sizeof h->why, "refused: %.*s", (int)err.len, (const char *)err.ptr);
        grid_strategy_string_free(&err);
        return false;
    }

    // The host's rules.
    typedef unsigned long long ull;
    if (d->cells.words.len != 4 * d->cells.entity.len)
        return pp__gh_refuse(h, d, "cells: %zu entities but %zu words", d->cells.entity.len, d->cells.words.len);
    const exports_powerplug_strategy_grid_payment_request_batch_t *r = &d->payment_requests;
    if (r->wh.len != r->consumer.len || r->owed.len != r->consumer.len)
        return pp__gh_refuse(h, d, "payment-requests: the batch's columns differ in length");
    uint64_t owed = 0, billed_wh = 0, paid_out = 0;
    for (size_t i = 0; i < r->consumer.len; i++)
        if (__builtin_add_overflow(owed, r->owed.ptr[i], &owed) ||
            __builtin_add_overflow(billed_wh, r->wh.ptr[i], &billed_wh))
            return pp__gh_refuse(h, d, "payment-requests: the amounts add up to more than 2^64 - 1");
    for (size_t i = 0; i < d->payouts.len; i++) {
        const exports_powerplug_strategy_grid_payout_t *p = &d->payouts.ptr[i];
        if (p->producer >= PP_GH_ENTITIES || h->kind[p->producer] != 2)
            return pp__gh_refuse(h, d, "payout to %u, not a producer", p->producer);
        if (p->amount == 0) return pp__gh_refuse(h, d, "a payout of 0 tokens to %u", p->producer);
        if (__builtin_add_overflow(paid_out, p->amount, &paid_out))
            return pp__gh_refuse(h, d, "payouts add up to more than 2^64 - 1");
    }
    if (paid_out > h->funds)
        return pp__gh_refuse(h, d, "payouts of %llu tokens, but the grid's wallet holds %llu", (ull)paid_out,
                             (ull)h->funds);
    uint64_t reported[PP_GH_ENTITIES], billed[PP_GH_ENTITIES];
    memcpy(reported, h->reported, sizeof reported);
    memcpy(billed, h->billed, sizeof billed);
    for (size_t i = 0; i < h->usage_len; i++) reported[consumer[i]] += wh[i];
    for (size_t i = 0; i < r->consumer.len; i++) {
        uint32_t c = r->consumer.ptr[i];
        if (c >= PP_GH_ENTITIES || (h->kind[c] != 1 && !(h->kind[c] == 0 && reported[c] > 0)))
            return pp__gh_refuse(h, d, "a payment request to entity %u, which is not a registered consumer", c);
        billed[c] += r->wh.ptr[i];
        if (billed[c] > reported[c])
            return pp__gh_refuse(h, d, "consumer %u would have been billed %llu Wh in all, more than the %llu Wh it reported",
                                 c, (ull)billed[c], (ull)reported[c]);
    }

    // Applied: the books, the news taken; payouts confirmed and bills paid next tick.
    memcpy(h->reported, reported, sizeof reported);
    memcpy(h->billed, billed, sizeof billed);
    free(h->state);
    h->state = malloc(d->state.len + 1);
    memcpy(h->state, d->state.ptr, d->state.len);
    h->state_len = d->state.len;
    for (size_t i = 0; i < d->cells.entity.len; i++)
        if (d->cells.entity.ptr[i] < PP_GH_ENTITIES)
            memcpy(h->cells[d->cells.entity.ptr[i]], d->cells.words.ptr + 4 * i, 4 * sizeof(uint64_t));
    h->joined_len = h->left_len = h->usage_len = h->output_len = h->transfers_len = 0;
    for (size_t i = 0; i < d->payouts.len; i++) {
        h->funds -= d->payouts.ptr[i].amount;
        h->transfers[h->transfers_len++] = (powerplug_strategy_types_transfer_t){
            {true, d->payouts.ptr[i].producer}, d->payouts.ptr[i].amount, h->now_ms, false};
    }
    for (size_t i = 0; h->pays_bills && i < r->consumer.len; i++)
        if (r->owed.ptr[i] > 0) pp_gh_pays(h, r->consumer.ptr[i], r->owed.ptr[i]);
    return true;
}

static inline void pp_gh_free(pp_grid_harness *h) {
    free(h->state);
    h->state = NULL;
}

#endif

// {{name}}: a producer strategy. Each tick it reports what its sources
// delivered since its last report as one output, from the end of that report
// to now (an hour at most: the grid drops a longer one), asking
// `price-per-kwh` tokens (4 unless configured) per kWh; the fraction of a
// token carries over. A report claims at most 1 GWh (the host refuses more);
// the rest waits for the next tick.
//
// State, 24 bytes: the end of the last report (ms), the thousandths of a token
// carried, the Wh waiting, little-endian: the books format `{{name}}@1` that
// build.sh declares. The grid keeps one report per start time, so every report
// starts where the last one ended. C's unsigned arithmetic wraps silently:
// every sum that could overflow is checked and refuses the tick.
//
// Memory: each tick runs in a fresh instance that is thrown away after it, so
// the input is never freed here. Everything in the decision, strings included,
// must come from malloc (the bindings free it after the host has read it).
#include <stdlib.h>
#include <string.h>

#include "producer_strategy.h"

typedef exports_powerplug_strategy_producer_producer_input_t input_t;
typedef exports_powerplug_strategy_producer_producer_decision_t decision_t;

#define MAX_REPORT_WH 1000000000ull
#define MAX_SPAN_MS 3600000ull // the grid drops a report that covers more

static bool refuse(producer_strategy_string_t *err, const char *why) {
    producer_strategy_string_dup(err, why);
    return false;
}

// An unsigned integer setting (the last one named `key`), or `fallback`; false if malformed.
static bool setting(const input_t *input, const char *key, uint64_t fallback, uint64_t *out) {
    const producer_strategy_string_t *value = NULL;
    for (size_t i = 0; i < input->config.len; i++) {
        const producer_strategy_string_t *k = &input->config.ptr[i].key;
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

static void metric(decision_t *d, const char *name, uint64_t value) {
    exports_powerplug_strategy_producer_metric_t *m = &d->metrics.ptr[d->metrics.len++];
    producer_strategy_string_dup(&m->name, name);
    m->value = value > INT64_MAX ? INT64_MAX : (int64_t)value;
}

bool exports_powerplug_strategy_producer_tick(input_t *input, decision_t *d, producer_strategy_string_t *err) {
    uint64_t price;
    if (!setting(input, "price-per-kwh", 4, &price))
        return refuse(err, "config `price-per-kwh`: expected an unsigned integer");
    // [last report's end, thousandths carried, Wh waiting]
    uint64_t state[3] = {0, 0, 0};
    if (input->state.len == sizeof state) {
        for (size_t i = 0; i < 24; i++) state[i / 8] |= (uint64_t)input->state.ptr[i] << (8 * (i % 8));
    } else if (input->state.len != 0) {
        return refuse(err, "state: not one this strategy saved");
    }
    memset(d, 0, sizeof *d);

    uint64_t total = state[2], start = state[0];
    for (size_t i = 0; i < input->outputs.len; i++)
        if (__builtin_add_overflow(total, input->outputs.ptr[i].wh, &total)) return refuse(err, "Wh overflow 64 bits");
    uint64_t wh = total < MAX_REPORT_WH ? total : MAX_REPORT_WH, asked = 0;
    if (start == 0) { // the first report starts with the first reading
        start = input->now_ms;
        for (size_t i = 0; i < input->outputs.len; i++)
            if (input->outputs.ptr[i].start_ms < start) start = input->outputs.ptr[i].start_ms;
    }
    if (input->now_ms > MAX_SPAN_MS && start < input->now_ms - MAX_SPAN_MS) start = input->now_ms - MAX_SPAN_MS;
    d->commands.ptr = malloc(sizeof *d->commands.ptr);
    if (wh > 0 && start < input->now_ms) {
        unsigned __int128 milli = (unsigned __int128)wh * price + state[1];
        if (milli / 1000 > UINT64_MAX) return refuse(err, "the price overflows 64 bits");
        asked = (uint64_t)(milli / 1000);
        state[1] = (uint64_t)(milli % 1000);
        d->commands.ptr[d->commands.len++] =
            (exports_powerplug_strategy_producer_output_command_t){start, input->now_ms, wh, asked};
        state[0] = input->now_ms;
        state[2] = total - wh;
    } else {
        state[2] = total;
        wh = 0;
    }

    d->state.ptr = malloc(sizeof state);
    d->state.len = sizeof state;
    for (size_t i = 0; i < 24; i++) d->state.ptr[i] = (uint8_t)(state[i / 8] >> (8 * (i % 8)));
    d->metrics.ptr = malloc(3 * sizeof *d->metrics.ptr);
    metric(d, "reported-wh", wh);
    metric(d, "asked", asked);
    metric(d, "waiting-wh", state[2]);
    return true;
}

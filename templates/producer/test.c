// The strategy's first test, run natively by build.sh before it builds the
// component: it calls the strategy's tick as the bindings would.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "producer_strategy.h"

typedef exports_powerplug_strategy_producer_producer_input_t input_t;
typedef exports_powerplug_strategy_producer_producer_decision_t decision_t;

// What the bindings import from the host, natively: log lines go to stderr.
void __wasm_import_powerplug_strategy_log_log(int32_t level, uint8_t *message, size_t len) {
    fprintf(stderr, "log %d: %.*s\n", level, (int)len, (const char *)message);
}
void __component_type_object_force_link_producer_strategy(void) {}

static int failures = 0;
#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                      \
        }                                                                    \
    } while (0)

#define NOW 1767226500000ull // 2026-01-01T00:15Z

// A tick at `now` of `n` readings (`wh[i]` from source i + 1) of the minute before it.
static bool tick(uint64_t now, size_t n, const uint64_t *wh, producer_strategy_list_u8_t state, const char *price,
                 decision_t *d, producer_strategy_string_t *err) {
    exports_powerplug_strategy_producer_source_output_t outputs[4];
    for (size_t i = 0; i < n; i++)
        outputs[i] = (exports_powerplug_strategy_producer_source_output_t){(uint32_t)i + 1, now - 60000, now - 30000, wh[i]};
    exports_powerplug_strategy_producer_setting_t setting = {
        {(uint8_t *)"price-per-kwh", 13}, {(uint8_t *)price, price ? strlen(price) : 0}};
    input_t input = {0};
    input.now_ms = now;
    input.config = (exports_powerplug_strategy_producer_list_setting_t){&setting, price ? 1 : 0};
    input.state = state;
    input.outputs = (exports_powerplug_strategy_producer_list_source_output_t){outputs, n};
    return exports_powerplug_strategy_producer_tick(&input, d, err);
}

int main(void) {
    decision_t first, second, d;
    producer_strategy_string_t err;
    producer_strategy_list_u8_t none = {NULL, 0};

    // 2,700 Wh at 4 a kWh: 10.8 tokens, 10 asked, 0.8 carried.
    uint64_t two[] = {1500, 1200};
    CHECK(tick(NOW, 2, two, none, NULL, &first, &err));
    CHECK(first.commands.len == 1);
    exports_powerplug_strategy_producer_output_command_t c = first.commands.ptr[0];
    CHECK(c.start_ms == NOW - 60000 && c.end_ms == NOW && c.wh == 2700 && c.price == 10);
    // 300 Wh more: 1.2 + 0.8 = 2 tokens, from the end of the last report.
    uint64_t one[] = {300};
    CHECK(tick(NOW + 60000, 1, one, first.state, NULL, &second, &err));
    c = second.commands.ptr[0];
    CHECK(c.start_ms == NOW && c.end_ms == NOW + 60000 && c.wh == 300 && c.price == 2);
    exports_powerplug_strategy_producer_producer_decision_free(&first);
    exports_powerplug_strategy_producer_producer_decision_free(&second);

    // The price is a setting; one that is not a number refuses the tick.
    uint64_t three_kwh[] = {3000};
    CHECK(tick(NOW, 1, three_kwh, none, "7", &d, &err));
    CHECK(d.commands.len == 1 && d.commands.ptr[0].price == 21);
    exports_powerplug_strategy_producer_producer_decision_free(&d);
    CHECK(!tick(NOW, 1, three_kwh, none, "seven", &d, &err));
    CHECK(err.len > 13 && memcmp(err.ptr, "config `price-per-kwh`", 22) == 0);
    producer_strategy_string_free(&err);

    if (failures) return 1;
    printf("ok\n");
    return 0;
}

#define _GNU_SOURCE // memmem
// The strategy's first test, run natively by build.sh before it builds the
// component: it calls the strategy's tick as the bindings would. Run it alone:
//   ./build.sh   (or see build.sh for the one clang line)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grid_strategy.h"
#include "powerplug.h"
#include "powerplug_grid_test.h"

typedef exports_powerplug_strategy_grid_grid_input_t input_t;
typedef exports_powerplug_strategy_grid_grid_decision_t decision_t;

// What the bindings import from the host, natively: log lines go to stderr.
void __wasm_import_powerplug_strategy_log_log(int32_t level, uint8_t *message, size_t len) {
    fprintf(stderr, "log %d: %.*s\n", level, (int)len, (const char *)message);
}
void __component_type_object_force_link_grid_strategy(void) {}

static int failures = 0;
#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                      \
        }                                                                    \
    } while (0)

static grid_strategy_string_t str(const char *s) {
    return (grid_strategy_string_t){(uint8_t *)s, strlen(s)};
}

// A tick at 2026-01-01T00:15Z: consumer[i] used wh[i]; cells of `known` entities.
static bool tick(size_t n, uint32_t *consumer, uint64_t *wh, size_t known, uint32_t *cell_entity,
                 uint64_t *cell_words, const char *price, decision_t *d, grid_strategy_string_t *err) {
    uint64_t now = 1767226500000ull;
    uint64_t start[8], end[8];
    for (size_t i = 0; i < n; i++) start[i] = now - 900000, end[i] = now;
    exports_powerplug_strategy_grid_setting_t setting = {str("price-per-kwh"), str(price ? price : "")};
    input_t input = {0};
    input.now_ms = now;
    input.config = (exports_powerplug_strategy_grid_list_setting_t){&setting, price ? 1 : 0};
    input.cells.entity = (grid_strategy_list_u32_t){cell_entity, known};
    input.cells.words = (grid_strategy_list_u64_t){cell_words, known * 4};
    input.usage.consumer = (grid_strategy_list_u32_t){consumer, n};
    input.usage.start_ms = (grid_strategy_list_u64_t){start, n};
    input.usage.end_ms = (grid_strategy_list_u64_t){end, n};
    input.usage.wh = (grid_strategy_list_u64_t){wh, n};
    return exports_powerplug_strategy_grid_tick(&input, d, err);
}

int main(void) {
    decision_t d;
    grid_strategy_string_t err;

    // Consumer 1 had 600 Wh carried over and uses 1,900: 2 kWh billed, 500 Wh carried.
    uint32_t consumers[] = {1, 2}, known[] = {1};
    uint64_t wh[] = {1900, 300}, cells[] = {4000, 600, 0, 0};
    CHECK(tick(2, consumers, wh, 1, known, cells, NULL, &d, &err));
    CHECK(d.payment_requests.consumer.len == 1 && d.payment_requests.consumer.ptr[0] == 1);
    CHECK(d.payment_requests.wh.ptr[0] == 2000 && d.payment_requests.owed.ptr[0] == 10);
    uint64_t want[] = {6000, 500, 10, 0, 0, 300, 0, 0}; // [billed, carried, owed, paid]
    CHECK(d.cells.entity.len == 2 && d.cells.entity.ptr[0] == 1 && d.cells.entity.ptr[1] == 2);
    CHECK(d.cells.words.len == 8 && memcmp(d.cells.words.ptr, want, sizeof want) == 0);
    exports_powerplug_strategy_grid_grid_decision_free(&d);

    // The price is a setting; one that is not a number refuses the tick.
    uint32_t zero[] = {0};
    uint64_t three_kwh[] = {3000};
    CHECK(tick(1, zero, three_kwh, 0, NULL, NULL, " 7 ", &d, &err));
    CHECK(d.payment_requests.owed.len == 1 && d.payment_requests.owed.ptr[0] == 21);
    exports_powerplug_strategy_grid_grid_decision_free(&d);
    CHECK(!tick(1, zero, three_kwh, 0, NULL, NULL, "seven", &d, &err));
    CHECK(err.len > 0 && memmem(err.ptr, err.len, "price-per-kwh", 13) != NULL);
    grid_strategy_string_free(&err);

    // Producers get 4 of every 5 tokens paid, in whole 40s, by output: consumer
    // 1 pays 50, producer 7 made all the output, so 40 go to it at once.
    {
        uint64_t now = 1767226500000ull;
        exports_powerplug_strategy_grid_output_t output = {7, now - 60000, now, 1000, 4};
        powerplug_strategy_types_transfer_t paid = {{true, 1}, 50, now - 1000, true};
        input_t input = {0};
        input.now_ms = now;
        input.output = (exports_powerplug_strategy_grid_list_output_t){&output, 1};
        input.transfers = (exports_powerplug_strategy_grid_list_transfer_t){&paid, 1};
        CHECK(exports_powerplug_strategy_grid_tick(&input, &d, &err));
        CHECK(d.payouts.len == 1 && d.payouts.ptr[0].producer == 7 && d.payouts.ptr[0].amount == 40);
        uint64_t paid_cell[] = {0, 0, 0, 50};
        CHECK(d.cells.entity.len == 1 && memcmp(d.cells.words.ptr, paid_cell, sizeof paid_cell) == 0);
        // The books in the state read back: 50 in, 40 paid out, 10 running costs.
        pp_books books;
        CHECK(pp_books_load(&books, d.state.ptr, d.state.len));
        CHECK(books.income == 50 && books.available == 0 && books.producers_received == 40);
        CHECK(books.producers_len == 1 && books.producers[0].owed == 40);
        pp_books_free(&books);
        exports_powerplug_strategy_grid_grid_decision_free(&d);
    }

    // Many ticks as the host runs them (kit/c/powerplug_grid_test.h): state and
    // cells carried over, consumers paying at the next tick, and every decision
    // held to the host's rules (false, with `why`, where the host would refuse).
    {
        pp_grid_harness h;
        pp_gh_init(&h);
        uint32_t alice = pp_gh_consumer(&h), sun = pp_gh_producer(&h), wind = pp_gh_producer(&h);
        uint64_t paid_out = 0;
        for (int i = 0; i < 30; i++) {
            pp_gh_usage(&h, alice, 4000);
            pp_gh_output(&h, sun, 100, 6);
            pp_gh_output(&h, wind, 300, 6);
            CHECK(pp_gh_tick(&h, &d));
            for (size_t p = 0; p < d.payouts.len; p++) paid_out += d.payouts.ptr[p].amount;
            exports_powerplug_strategy_grid_grid_decision_free(&d);
        }
        // Money is neither lost nor created: the producers' part = paid out + available.
        pp_books books;
        CHECK(pp_books_load(&books, h.state, h.state_len));
        CHECK(books.producers_received == paid_out + books.available);
        CHECK(books.producers_received == books.income * 4 / 5 && paid_out > 0);
        CHECK(pp_gh_cell(&h, alice)[0] == 120000); // billed Wh
        pp_books_free(&books);
        pp_gh_setting(&h, "price-per-kwh", "seven");
        CHECK(!pp_gh_tick(&h, &d) && strstr(h.why, "price-per-kwh") != NULL);
        pp_gh_free(&h);
    }

    if (failures) return 1;
    printf("ok\n");
    return 0;
}

// The example's test, run natively by build.sh before it builds the component:
// four ticks through the strategy, with the books (cells, state) carried from
// each tick to the next as the host carries them.
#define _GNU_SOURCE // memmem
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grid_strategy.h"

typedef exports_powerplug_strategy_grid_grid_input_t input_t;
typedef exports_powerplug_strategy_grid_grid_decision_t decision_t;

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

#define HOUR_MS 3600000ull
#define THURSDAY 1767225600000ull // 2026-01-01T00:00Z

// The host's books for this test: the state, and cells of entities 0..7.
static struct {
    uint8_t state[256];
    size_t state_len;
    uint64_t cells[8][4];
    bool has_cell[8];
} books;

typedef struct { uint32_t entity; uint64_t value; } pair_t;


// One tick: `usage` and `output` are (entity, Wh), `paid` (consumer, tokens in).
static decision_t tick(uint64_t now, const pair_t *usage, size_t n_usage, const pair_t *output, size_t n_output,
                       const pair_t *paid, size_t n_paid, const uint32_t *left, size_t n_left) {
    static uint32_t consumer[8], cell_entity[8];
    static uint64_t start[8], end[8], wh[8], words[32];
    static exports_powerplug_strategy_grid_output_t out[8];
    static exports_powerplug_strategy_grid_transfer_t transfers[8];
    input_t input = {0};
    input.now_ms = now;
    input.state = (grid_strategy_list_u8_t){books.state, books.state_len};
    for (size_t i = 0; i < n_usage; i++) {
        consumer[i] = usage[i].entity, wh[i] = usage[i].value, start[i] = now - 900000, end[i] = now;
    }
    input.usage.consumer = (grid_strategy_list_u32_t){consumer, n_usage};
    input.usage.start_ms = (grid_strategy_list_u64_t){start, n_usage};
    input.usage.end_ms = (grid_strategy_list_u64_t){end, n_usage};
    input.usage.wh = (grid_strategy_list_u64_t){wh, n_usage};
    for (size_t i = 0; i < n_output; i++)
        out[i] = (exports_powerplug_strategy_grid_output_t){output[i].entity, now - 900000, now, output[i].value, 0};
    input.output = (exports_powerplug_strategy_grid_list_output_t){out, n_output};
    for (size_t i = 0; i < n_paid; i++)
        transfers[i] = (exports_powerplug_strategy_grid_transfer_t){{true, paid[i].entity}, paid[i].value, now, true};
    input.transfers = (exports_powerplug_strategy_grid_list_transfer_t){transfers, n_paid};
    input.left = (grid_strategy_list_u32_t){(uint32_t *)left, n_left};
    // The host sends every cell it holds of the entities this tick mentions; all here.
    size_t known = 0;
    for (uint32_t e = 0; e < 8; e++) {
        if (!books.has_cell[e]) continue;
        cell_entity[known] = e;
        memcpy(words + 4 * known++, books.cells[e], sizeof books.cells[e]);
    }
    input.cells.entity = (grid_strategy_list_u32_t){cell_entity, known};
    input.cells.words = (grid_strategy_list_u64_t){words, 4 * known};

    decision_t d;
    grid_strategy_string_t err;
    if (!exports_powerplug_strategy_grid_tick(&input, &d, &err)) {
        fprintf(stderr, "refused: %.*s\n", (int)err.len, (const char *)err.ptr);
        exit(1);
    }
    memcpy(books.state, d.state.ptr, d.state.len);
    books.state_len = d.state.len;
    for (size_t i = 0; i < d.cells.entity.len; i++) {
        books.has_cell[d.cells.entity.ptr[i]] = true;
        memcpy(books.cells[d.cells.entity.ptr[i]], d.cells.words.ptr + 4 * i, sizeof books.cells[0]);
    }
    return d;
}

static int64_t metric(const decision_t *d, const char *name) {
    for (size_t i = 0; i < d->metrics.len; i++)
        if (d->metrics.ptr[i].name.len == strlen(name) && memcmp(d->metrics.ptr[i].name.ptr, name, strlen(name)) == 0)
            return d->metrics.ptr[i].value;
    return -999;
}

int main(void) {
    // Thursday 18:30 (5 a kWh): consumer 0 used 2.5 kWh, consumer 1 0.8;
    // producer 5 made 3 kWh, producer 6 one.
    pair_t usage1[] = {{0, 2500}, {1, 800}}, output[] = {{5, 3000}, {6, 1000}};
    decision_t d = tick(THURSDAY + 18 * HOUR_MS + HOUR_MS / 2, usage1, 2, output, 2, NULL, 0, NULL, 0);
    CHECK(d.payment_requests.consumer.len == 1 && d.payment_requests.consumer.ptr[0] == 0);
    CHECK(d.payment_requests.wh.ptr[0] == 2000 && d.payment_requests.owed.ptr[0] == 10);
    CHECK(books.cells[0][0] == 2500 && books.cells[0][1] == 2000 && books.cells[0][2] == 10);
    CHECK(books.cells[1][0] == 800 && books.cells[1][1] == 0);
    CHECK(d.payouts.len == 0); // nothing came in yet
    exports_powerplug_strategy_grid_grid_decision_free(&d);

    // Saturday 03:00 (3 a kWh). Consumer 0 paid 10: 80% is 8, producer 5 made
    // 3/4 of the output: 6, producer 6: 2.
    pair_t usage2[] = {{0, 600}, {1, 300}}, paid2[] = {{0, 10}};
    d = tick(THURSDAY + 51 * HOUR_MS, usage2, 2, NULL, 0, paid2, 1, NULL, 0);
    CHECK(d.payment_requests.consumer.len == 2 && d.payment_requests.owed.ptr[0] == 3 && d.payment_requests.owed.ptr[1] == 3);
    CHECK(books.cells[0][0] == 3100 && books.cells[0][1] == 3000 && books.cells[0][2] == 13 && books.cells[0][3] == 10);
    CHECK(d.payouts.len == 2 && d.payouts.ptr[0].producer == 5 && d.payouts.ptr[0].amount == 6);
    CHECK(d.payouts.ptr[1].producer == 6 && d.payouts.ptr[1].amount == 2);
    exports_powerplug_strategy_grid_grid_decision_free(&d);

    // Consumer 1 pays 3: 80% of 13 is 10, 8 paid, so 2 due: 1 to producer 5
    // (1.5), none to producer 6 (0.5): 1 token waits.
    pair_t paid3[] = {{1, 3}};
    d = tick(THURSDAY + 52 * HOUR_MS, NULL, 0, NULL, 0, paid3, 1, NULL, 0);
    CHECK(d.payouts.len == 1 && d.payouts.ptr[0].producer == 5 && d.payouts.ptr[0].amount == 1);
    CHECK(metric(&d, "price-per-kwh") == 3);
    CHECK(metric(&d, "running-costs-received") == 3 && metric(&d, "available") == 1);
    exports_powerplug_strategy_grid_grid_decision_free(&d);

    // Producer 5 leaves; Monday, consumer 0 pays 3: 80% of 16 is 12, 9 paid,
    // so 3 due, all to producer 6, the only one left.
    pair_t paid4[] = {{0, 3}};
    uint32_t left[] = {5};
    d = tick(THURSDAY + 4 * 24 * HOUR_MS, NULL, 0, NULL, 0, paid4, 1, left, 1);
    CHECK(d.payouts.len == 1 && d.payouts.ptr[0].producer == 6 && d.payouts.ptr[0].amount == 3);
    CHECK(metric(&d, "price-per-kwh") == 5 && metric(&d, "available") == 0);
    exports_powerplug_strategy_grid_grid_decision_free(&d);

    if (failures) return 1;
    printf("ok\n");
    return 0;
}

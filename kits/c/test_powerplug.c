// Tests of the C kit's library, natively under the sanitizers:
//   clang-19 -std=c11 -Wall -Wextra -Werror -fsanitize=address,undefined \
//       -Ikits/c kits/c/test_powerplug.c -o test_powerplug && ./test_powerplug
#include <stdio.h>

#include "powerplug.h"

static int failures = 0;
#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                      \
        }                                                                    \
    } while (0)

#define NARROW(F) F(uint64_t, wh, 64) F(uint32_t, count, 32) F(uint8_t, tier, 8) F(int16_t, delta, 16) \
    F(bool, flag, 1) F(int64_t, last, 64) F(uint64_t, wide, 40)
PP_CELL(narrow_t, NARROW)
#define TOO_BIG(F) F(uint64_t, a, 64) F(uint64_t, b, 64) F(uint64_t, c, 64) F(uint64_t, d, 64) F(bool, e, 1)
PP_CELL(too_big_t, TOO_BIG)

// What pp_setting reads: a list of key/value strings, as the bindings have it.
typedef struct { uint8_t *ptr; size_t len; } text_t;
typedef struct { text_t key, value; } setting_t;
typedef struct { struct { setting_t *ptr; size_t len; } config; } input_t;

static text_t text(const char *s) { return (text_t){(uint8_t *)s, strlen(s)}; }

static void cells(void) {
    narrow_t c = {UINT64_MAX, UINT32_MAX, 255, INT16_MIN, true, INT64_MIN, (1ull << 40) - 1};
    uint64_t words[4];
    CHECK(narrow_t_to(&c, words));
    // u32 + u8 + i16 + bool share word 1; the i64 fills word 2; the 40 bits start word 3.
    CHECK(words[0] == UINT64_MAX);
    CHECK(words[1] == (0xffffffffull | 0xffull << 32 | 0x8000ull << 40 | 1ull << 56));
    CHECK(words[2] == 1ull << 63 && words[3] == (1ull << 40) - 1);
    narrow_t back = narrow_t_from(words);
    CHECK(memcmp(&back, &c, sizeof c) == 0);
    c.wide = 1ull << 40; // does not fit its 40 bits
    CHECK(!narrow_t_to(&c, words));
    too_big_t big = {0};
    CHECK(!too_big_t_to(&big, words));
}

static void settings(void) {
    setting_t s[] = {{text("a"), text(" 7 ")}, {text("b"), text("-3")}, {text("c"), text("true")},
                     {text("a"), text("8")}, {text("d"), text("4.5")}};
    input_t input = {{s, 5}};
    uint64_t u;
    int64_t i;
    bool b;
    CHECK(pp_parse_u64(pp_setting(&input, "a"), 0, &u) && u == 8); // the last entry wins
    CHECK(pp_parse_i64(pp_setting(&input, "b"), 0, &i) && i == -3);
    CHECK(pp_parse_bool(pp_setting(&input, "c"), false, &b) && b);
    CHECK(pp_parse_u64(pp_setting(&input, "missing"), 4, &u) && u == 4);
    CHECK(!pp_parse_u64(pp_setting(&input, "b"), 0, &u));
    CHECK(!pp_parse_u64(pp_setting(&input, "d"), 0, &u));
    CHECK(!pp_parse_bool(pp_setting(&input, "a"), false, &b));
    CHECK(!pp_parse_u64((pp_text){(const uint8_t *)"18446744073709551616", 20, true}, 0, &u));
}

static void local_time(void) {
    uint64_t t = 1767226500000ull; // 2026-01-01T00:15Z, a Thursday
    pp_local utc = pp_local_at(t, 0), ny = pp_local_at(t, -300), early = pp_local_at(0, -60);
    CHECK(utc.weekday == 3 && utc.hour == 0 && utc.minute == 15);
    CHECK(ny.weekday == 2 && ny.hour == 19 && ny.day == utc.day - 1);
    CHECK(early.day == -1 && early.weekday == 2 && early.hour == 23);
    CHECK(pp_local_at(t + 2 * 86400000ull, 0).is_weekend);
}

static void books(void) {
    // The Rust SDK's test: 3 tokens a tick for 40 ticks, producers 1 and 2 at
    // 100 and 300 Wh a tick, 4 of 5 tokens theirs, whole 40s every 10 s.
    pp_rules rules = {4, 5, 40, 10000};
    pp_books b;
    CHECK(pp_books_load(&b, NULL, 0));
    uint64_t now = 1767225600000ull, paid_out_total = 0;
    for (int tick = 0; tick < 40; tick++) {
        now += 15000;
        CHECK(pp_books_output(&b, 1, 100) && pp_books_output(&b, 2, 300));
        uint64_t before = b.income;
        CHECK(pp_books_transfer(&b, true, true, 0, 3));
        pp_books_split(&b, &rules, before);
        uint32_t to[2];
        uint64_t amount[2], paid_out;
        pp_books_pay_out(&b, &rules, now, to, amount, &paid_out);
        paid_out_total += paid_out;
        CHECK(b.producers_received == b.income * 4 / 5);
        CHECK(b.producers_received == paid_out_total + b.available);
    }
    CHECK(b.producers_len == 2 && b.producers[0].owed == 20 && b.producers[1].owed == 60);
    CHECK(b.available == 96 - 80);
    // A producer that leaves is forgotten; its late confirmation changes nothing.
    pp_books_leave(&b, 2);
    CHECK(pp_books_transfer(&b, false, true, 2, 60));
    CHECK(b.producers_len == 1 && b.producers[0].index == 1);
    pp_books_free(&b);

    // The Rust SDK's encoding (postcard), byte for byte.
    pp_producer p = {5, 6, 7, 8};
    pp_books small = {1, 2, 3, 4, &p, 1, 9};
    size_t len;
    uint8_t *bytes = pp_books_save(&small, &len), want[] = {1, 2, 3, 4, 1, 5, 6, 7, 8, 9};
    CHECK(len == sizeof want && memcmp(bytes, want, len) == 0);
    pp_books read;
    CHECK(pp_books_load(&read, bytes, len) && read.producers_len == 1 && read.producers[0].received == 8);
    pp_books_free(&read);
    free(bytes);
    uint8_t truncated[] = {1, 2, 3, 4, 1, 5}, huge[] = {1, 2, 3, 4, 0xff, 0xff, 0xff, 0x0f};
    CHECK(!pp_books_load(&read, truncated, sizeof truncated));
    pp_books_free(&read);
    CHECK(!pp_books_load(&read, huge, sizeof huge));
    pp_books_free(&read);
    uint8_t big[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0, 0, 0};
    CHECK(pp_books_load(&read, big, sizeof big) && read.income == UINT64_MAX);
    CHECK(!pp_books_transfer(&read, true, false, 0, 1)); // the sum would wrap: refused
    pp_books_free(&read);
}

int main(void) {
    cells();
    settings();
    local_time();
    books();
    if (failures) return 1;
    printf("ok\n");
    return 0;
}

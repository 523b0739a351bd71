/*
 * Inventory: warehouses, items with a unique SKU and indexed category and
 * price, stock levels keyed by (warehouse_key, item_key), and orders that
 * take stock out inside one transaction.  Runs on the memory backend and
 * prints what it does.
 */
#include "inventory.kivis.h"

#include <kivis/memory.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check(inventory_db *db, int rc, const char *what)
{
    if (rc == KIVIS_OK)
        return;
    fprintf(stderr, "inventory: %s: %s (%s)\n", what, kivis_strerror(rc),
            inventory_errmsg(db));
    exit(1);
}

static warehouse_key add_warehouse(inventory_db *db, const char *code,
                                   const char *city)
{
    warehouse w;
    warehouse_key k;
    memset(&w, 0, sizeof w);
    snprintf(w.code, sizeof w.code, "%s", code);
    w.city = (char *)city;
    check(db, warehouse_put(db, &w, &k), "warehouse_put");
    printf("  warehouse %s (%s) -> warehouse_key{%llu}\n", code, city,
           (unsigned long long)k.id);
    return k;
}

static item_key add_item(inventory_db *db, const char *sku, const char *title,
                         category cat, uint32_t price)
{
    item it;
    item_key k;
    memset(&it, 0, sizeof it);
    snprintf(it.sku, sizeof it.sku, "%s", sku);
    it.title = (char *)title;
    it.category = cat;
    it.price_cents = price;
    check(db, item_put(db, &it, &k), "item_put");
    printf("  item %-8s %-14s %6.2f -> item_key{%llu}\n", sku, title,
           price / 100.0, (unsigned long long)k.id);
    return k;
}

static void set_stock(inventory_db *db, warehouse_key w, item_key i, int32_t qty)
{
    stock s;
    s.warehouse = w;
    s.item = i;
    s.quantity = qty;
    check(db, stock_put(db, &s, NULL), "stock_put");
}

/* Print the items a cursor yields. */
static void print_items(inventory_db *db, item_cursor *c)
{
    item it;
    int rc;
    while ((rc = item_next(c, NULL, &it)) == KIVIS_OK) {
        printf("    %-8s %-14s %6.2f\n", it.sku, it.title,
               it.price_cents / 100.0);
        item_clear(db, &it);
    }
    item_close(c);
    check(db, rc == KIVIS_NOTFOUND ? KIVIS_OK : rc, "item_next");
}

/* Take qty of an item out of a warehouse and record the order, atomically. */
static int place_order(inventory_db *db, warehouse_key w, item_key i,
                       uint32_t qty, uint64_t when)
{
    stock s;
    stock_key sk;
    sk.warehouse = w;
    sk.item = i;
    check(db, inventory_begin(db), "begin");
    int rc = stock_get(db, sk, &s);
    if (rc == KIVIS_OK && s.quantity < (int32_t)qty)
        rc = KIVIS_ERANGE;
    if (rc == KIVIS_OK) {
        order o;
        s.quantity -= (int32_t)qty;
        o.item = i;
        o.from = w;
        o.quantity = qty;
        o.placed_at = when;
        rc = stock_update(db, &s);
        if (rc == KIVIS_OK)
            rc = order_put(db, &o, NULL);
    }
    if (rc == KIVIS_OK)
        return inventory_commit(db);
    inventory_abort(db);
    return rc;
}

static void print_stock(inventory_db *db, warehouse_key w, const char *code)
{
    stock_key lo, hi;
    stock_cursor c;
    stock s;
    int rc;
    /* Every item of one warehouse: keys (w, 0) .. (w + 1, 0). */
    memset(&lo, 0, sizeof lo);
    lo.warehouse = w;
    hi = lo;
    hi.warehouse.id++;
    printf("  stock in %s:", code);
    check(db, stock_scan(db, &lo, &hi, 0, &c), "stock_scan");
    while ((rc = stock_next(&c, NULL, &s)) == KIVIS_OK) {
        item it;
        check(db, inventory_get(db, s.item, &it), "follow stock.item");
        printf(" %s=%d", it.sku, s.quantity);
        item_clear(db, &it);
    }
    stock_close(&c);
    printf("\n");
    check(db, rc == KIVIS_NOTFOUND ? KIVIS_OK : rc, "stock_next");
}

int main(void)
{
    kivis_storage *st;
    inventory_db *db;
    check(NULL, kivis_memory_open(NULL, &st), "memory_open");
    check(NULL, inventory_open(st, NULL, &db), "open");

    printf("warehouses and items:\n");
    warehouse_key north = add_warehouse(db, "NORTH", "Oslo");
    warehouse_key south = add_warehouse(db, "SOUTH", "Seville");
    item_key hammer = add_item(db, "T-100", "hammer", TOOLS, 1999);
    item_key saw = add_item(db, "T-200", "saw", TOOLS, 2450);
    item_key rake = add_item(db, "G-100", "rake", GARDEN, 1575);
    item_key pan = add_item(db, "K-100", "frying pan", KITCHEN, 3200);

    item dup;
    memset(&dup, 0, sizeof dup);
    snprintf(dup.sku, sizeof dup.sku, "T-100");
    dup.title = (char *)"another hammer";
    printf("  a second item with SKU T-100 -> %s\n",
           kivis_errname(item_put(db, &dup, NULL)));

    set_stock(db, north, hammer, 40);
    set_stock(db, north, saw, 5);
    set_stock(db, north, pan, 12);
    set_stock(db, south, rake, 30);
    set_stock(db, south, hammer, 8);
    printf("\nstock levels (key = warehouse_key, item_key):\n");
    print_stock(db, north, "NORTH");
    print_stock(db, south, "SOUTH");

    item_cursor c;
    printf("\ntools (item_by_category):\n");
    check(db, item_by_category(db, TOOLS, 0, &c), "item_by_category");
    print_items(db, &c);
    uint32_t lo = 1500, hi = 2500;
    printf("priced 15.00 .. 24.99 (item_by_price_cents_range), dearest first:\n");
    check(db, item_by_price_cents_range(db, &lo, &hi, KIVIS_REVERSE, &c),
          "item_by_price_cents_range");
    print_items(db, &c);
    printf("SKU T-200 (item_by_sku):\n");
    check(db, item_by_sku(db, "T-200", 0, &c), "item_by_sku");
    print_items(db, &c);
    printf("SKUs starting with \"T-\" (item_by_sku_prefix):\n");
    check(db, item_by_sku_prefix(db, "T-", 2, 0, &c), "item_by_sku_prefix");
    print_items(db, &c);

    printf("\norders:\n");
    printf("  3 saws from NORTH -> %s\n",
           kivis_errname(place_order(db, north, saw, 3, 1000)));
    printf("  4 saws from NORTH -> %s (only 2 left; nothing written)\n",
           kivis_errname(place_order(db, north, saw, 4, 1001)));
    printf("  10 hammers from SOUTH -> %s\n",
           kivis_errname(place_order(db, south, hammer, 10, 1002)));
    printf("  5 hammers from SOUTH -> %s\n",
           kivis_errname(place_order(db, south, hammer, 5, 1003)));
    print_stock(db, north, "NORTH");
    print_stock(db, south, "SOUTH");

    order_cursor oc;
    order o;
    int n = 0;
    check(db, order_by_item(db, saw, 0, &oc), "order_by_item");
    while (order_next(&oc, NULL, &o) == KIVIS_OK)
        n++;
    order_close(&oc);
    printf("  orders for saws (order_by_item): %d\n", n);

    printf("\nthe rake is discontinued: its stock row goes first\n");
    stock_key sk;
    sk.warehouse = south;
    sk.item = rake;
    check(db, stock_remove(db, sk), "stock_remove");
    check(db, inventory_remove(db, rake), "inventory_remove(item_key)");
    printf("  item_get(rake) -> %s\n", kivis_errname(item_get(db, rake, &dup)));
    print_stock(db, south, "SOUTH");

    inventory_close(db);
    kivis_storage_close(st);
    printf("\ndone\n");
    return 0;
}

/*
 * Per-owner limits (DESIGN.md section 12): how many functions an owner may
 * have (owner_max_functions), the sum over them of memory_mb x
 * max_concurrency (owner_max_memory_mb: the memory their sandboxes may take
 * at once) and the sum of max_concurrency (owner_max_concurrency). 0 turns
 * a limit off.
 *
 * Checked inside the transaction that creates or changes a function, after
 * locking the owner's row in `owners`: two creates of one owner run one
 * after the other, so both cannot pass a check that only one of them fits.
 */
#include "registry.h"

#include <stdlib.h>


static int
over(faas_error_t *err, const char *owner, long long want, const char *what,
     const char *key, long long limit)
{
    faas_error_set(err, 0, "owner limit: %s would have %lld %s, over"
                   " %s = %lld", owner, want, what, key, limit);
    err->code = FAAS_E_QUOTA;
    return -1;
}


int
faas_quota_check(faas_registry_t *reg, MYSQL *c, const char *owner,
                 const char *name, long long memory_mb,
                 long long max_concurrency, faas_error_t *err)
{
    MYSQL_RES *res;
    MYSQL_ROW  row;
    long long  count, memory, concurrency;

    if (reg->owner_max_functions == 0 && reg->owner_max_memory_mb == 0
        && reg->owner_max_concurrency == 0) {
        return 0;
    }
    if (faas_db_exec(c, err, "INSERT IGNORE INTO owners (subject) VALUES"
                     " (%s)", owner) < 0
        || faas_db_query(c, &res, err, "SELECT subject FROM owners WHERE"
                         " subject = %s FOR UPDATE", owner) < 0) {
        return -1;
    }
    mysql_free_result(res);
    /* A locking read: it sees what the owner's previous writers committed. */
    if (faas_db_query(c, &res, err, "SELECT COUNT(*),"
                      " COALESCE(SUM(v.memory_mb * f.max_concurrency), 0),"
                      " COALESCE(SUM(f.max_concurrency), 0) FROM functions f"
                      " JOIN versions v ON v.name = f.name AND v.version ="
                      " f.current_version WHERE f.owner = %s AND f.name <> %s"
                      " LOCK IN SHARE MODE", owner, name) < 0) {
        return -1;
    }
    row = mysql_fetch_row(res);
    count = (row ? atoll(row[0]) : 0) + 1;
    memory = (row ? atoll(row[1]) : 0) + memory_mb * max_concurrency;
    concurrency = (row ? atoll(row[2]) : 0) + max_concurrency;
    mysql_free_result(res);
    if (reg->owner_max_functions > 0 && count > reg->owner_max_functions) {
        return over(err, owner, count, "functions", "owner_max_functions",
                    reg->owner_max_functions);
    }
    if (reg->owner_max_memory_mb > 0 && memory > reg->owner_max_memory_mb) {
        return over(err, owner, memory, "MB of memory_mb x max_concurrency",
                    "owner_max_memory_mb", reg->owner_max_memory_mb);
    }
    if (reg->owner_max_concurrency > 0
        && concurrency > reg->owner_max_concurrency) {
        return over(err, owner, concurrency, "of max_concurrency",
                    "owner_max_concurrency", reg->owner_max_concurrency);
    }
    return 0;
}

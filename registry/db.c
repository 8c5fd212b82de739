/*
 * MySQL (MariaDB) access: a small pool of connections that are pinged and
 * reconnected when taken, a query formatter that escapes every string, and
 * the schema migrations applied at start.
 */
#include "registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errmsg.h>
#include <mysqld_error.h>

#include "cleanup.h"
#include "clock.h"
#include "config.h"
#include "log.h"

struct faas_db_pool_s {
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    MYSQL         **idle;
    int             nidle;
    int             size;
    int             out;      /* connections handed out */
    const char     *host, *socket, *user, *password, *database;
    unsigned        port;
    unsigned        timeout_s;
};

/* Each migration runs once, in order; its number goes to schema_migrations. */
static const char *migrations[] = {
    /* 1: functions, versions, owners, keys, executions */
    "CREATE TABLE owners ("
    " subject VARCHAR(255) NOT NULL PRIMARY KEY,"
    " created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;"
    "CREATE TABLE version_seq ("
    " name VARCHAR(63) NOT NULL PRIMARY KEY,"
    " last_version INT UNSIGNED NOT NULL"
    ") ENGINE=InnoDB DEFAULT CHARSET=ascii COLLATE=ascii_bin;"
    "CREATE TABLE functions ("
    " name VARCHAR(63) NOT NULL PRIMARY KEY,"
    " owner VARCHAR(255) NOT NULL,"
    " current_version INT UNSIGNED NOT NULL,"
    " public TINYINT NOT NULL DEFAULT 0,"
    " max_concurrency INT UNSIGNED NOT NULL,"
    " created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,"
    " updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,"
    " KEY (owner)"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;"
    "CREATE TABLE versions ("
    " name VARCHAR(63) NOT NULL,"
    " version INT UNSIGNED NOT NULL,"
    " runtime VARCHAR(16) NOT NULL,"
    " handler VARCHAR(255) NOT NULL,"
    " memory_mb INT UNSIGNED NOT NULL,"
    " timeout_ms INT UNSIGNED NOT NULL,"
    " keep_alive_s INT UNSIGNED NOT NULL,"
    " env TEXT NOT NULL,"
    " code_key VARCHAR(255) NOT NULL,"
    " code_sha256 CHAR(64) NOT NULL,"
    " code_size BIGINT UNSIGNED NOT NULL,"
    " created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,"
    " PRIMARY KEY (name, version)"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;"
    "CREATE TABLE access_keys ("
    " id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    " name VARCHAR(63) NOT NULL,"
    " sealed VARBINARY(128) NOT NULL,"
    " prefix VARCHAR(16) NOT NULL,"
    " created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,"
    " KEY (name)"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;"
    "CREATE TABLE executions ("
    " request_id CHAR(32) NOT NULL PRIMARY KEY,"
    " function VARCHAR(63) NOT NULL,"
    " version INT UNSIGNED NOT NULL,"
    " user VARCHAR(255) NOT NULL,"
    " start_type VARCHAR(8) NOT NULL,"
    " status VARCHAR(16) NOT NULL,"
    " http_status INT UNSIGNED NOT NULL,"
    " duration_us BIGINT UNSIGNED NOT NULL,"
    " total_us BIGINT UNSIGNED NOT NULL,"
    " cold_start_us BIGINT UNSIGNED NOT NULL,"
    " memory_bytes BIGINT UNSIGNED NOT NULL,"
    " log_key VARCHAR(255) NOT NULL,"
    " agent_host VARCHAR(255) NOT NULL,"
    " sandbox_id VARCHAR(32) NOT NULL,"
    " timestamp_ms BIGINT UNSIGNED NOT NULL,"
    " KEY fn_time (function, timestamp_ms)"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;",
    /* 2: tenancy (DESIGN.md section 7). Subjects compare exactly (NO PAD:
     * "alice " is not "alice"); first_version marks where the current
     * incarnation of a name starts; purges lists deleted functions whose
     * records and logs are still to be removed. */
    "ALTER TABLE owners MODIFY subject VARCHAR(255) CHARACTER SET utf8mb4"
    " COLLATE utf8mb4_nopad_bin NOT NULL;"
    "ALTER TABLE functions MODIFY owner VARCHAR(255) CHARACTER SET utf8mb4"
    " COLLATE utf8mb4_nopad_bin NOT NULL,"
    " ADD COLUMN first_version INT UNSIGNED NOT NULL DEFAULT 0;"
    "UPDATE functions f SET first_version = (SELECT COALESCE(MIN(v.version),"
    " f.current_version) FROM versions v WHERE v.name = f.name);"
    "ALTER TABLE executions MODIFY user VARCHAR(255) CHARACTER SET utf8mb4"
    " COLLATE utf8mb4_nopad_bin NOT NULL,"
    " ADD KEY fn_version (function, version);"
    "CREATE TABLE purges ("
    " name VARCHAR(63) NOT NULL,"
    " last_version INT UNSIGNED NOT NULL,"
    " created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,"
    " PRIMARY KEY (name, last_version)"
    ") ENGINE=InnoDB DEFAULT CHARSET=ascii COLLATE=ascii_bin;",
    /* 3: the W3C trace id of each call (DESIGN.md section 5); '' for the
     * records written before it. */
    "ALTER TABLE executions ADD COLUMN trace_id CHAR(32) CHARACTER SET ascii"
    " COLLATE ascii_bin NOT NULL DEFAULT '';",
};


faas_db_pool_t *
faas_db_open(const json_t *cfg, int size, faas_error_t *err)
{
    faas_db_pool_t *p;

    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        faas_error_set(err, ENOMEM, "db pool");
        return NULL;
    }
    p->idle = calloc((size_t) size, sizeof(MYSQL *));
    if (p->idle == NULL) {
        free(p);
        faas_error_set(err, ENOMEM, "db pool");
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->size = size;
    p->host = faas_config_string(cfg, "mysql_host", "127.0.0.1");
    p->port = (unsigned) faas_config_int(cfg, "mysql_port", 3306);
    p->socket = faas_config_string(cfg, "mysql_socket", NULL);
    p->user = faas_config_string(cfg, "mysql_user", "root");
    p->password = faas_config_string(cfg, "mysql_password", NULL);
    p->database = faas_config_string(cfg, "mysql_database", "faas");
    p->timeout_s = (unsigned) faas_config_int(cfg, "mysql_timeout_s", 5);
    return p;
}


void
faas_db_close(faas_db_pool_t *p)
{
    int i;

    if (p == NULL) {
        return;
    }
    for (i = 0; i < p->nidle; i++) {
        mysql_close(p->idle[i]);
    }
    free(p->idle);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p);
}


static MYSQL *
db_connect(faas_db_pool_t *p, faas_error_t *err)
{
    MYSQL *c;
    my_bool off = 0;

    c = mysql_init(NULL);
    if (c == NULL) {
        faas_error_set(err, ENOMEM, "mysql_init");
        return NULL;
    }
    mysql_options(c, MYSQL_OPT_CONNECT_TIMEOUT, &p->timeout_s);
    mysql_options(c, MYSQL_OPT_READ_TIMEOUT, &p->timeout_s);
    mysql_options(c, MYSQL_OPT_WRITE_TIMEOUT, &p->timeout_s);
    mysql_options(c, MYSQL_OPT_RECONNECT, &off);
    mysql_options(c, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (mysql_real_connect(c, p->socket ? NULL : p->host, p->user,
                           p->password, NULL, p->socket ? 0 : p->port,
                           p->socket, CLIENT_MULTI_STATEMENTS) == NULL) {
        faas_error_set(err, 0, "mysql connect: %s", mysql_error(c));
        err->code = FAAS_E_UNAVAILABLE;
        mysql_close(c);
        return NULL;
    }
    if (mysql_select_db(c, p->database) != 0) {
        /* First start: create the database, then use it. */
        char *q = faas_db_fmt(c, "CREATE DATABASE IF NOT EXISTS `%r`",
                              p->database);
        if (q == NULL || mysql_query(c, q) != 0
            || mysql_select_db(c, p->database) != 0) {
            faas_error_set(err, 0, "mysql database %s: %s", p->database,
                           mysql_error(c));
            err->code = FAAS_E_UNAVAILABLE;
            free(q);
            mysql_close(c);
            return NULL;
        }
        free(q);
    }
    return c;
}


MYSQL *
faas_db_acquire(faas_db_pool_t *p, faas_error_t *err)
{
    MYSQL          *c = NULL;
    struct timespec ts;

    ts = faas_deadline_after_ms((long) p->timeout_s * 1000);
    pthread_mutex_lock(&p->lock);
    while (p->nidle == 0 && p->out >= p->size) {
        if (pthread_cond_timedwait(&p->cond, &p->lock, &ts) == ETIMEDOUT) {
            pthread_mutex_unlock(&p->lock);
            faas_error_set(err, 0, "mysql: no free connection in the pool");
            err->code = FAAS_E_UNAVAILABLE;
            return NULL;
        }
    }
    if (p->nidle > 0) {
        c = p->idle[--p->nidle];
    }
    p->out++;
    pthread_mutex_unlock(&p->lock);

    if (c != NULL && mysql_ping(c) != 0) {
        faas_warn(NULL, "mysql connection lost (%s), reconnecting",
                  mysql_error(c));
        mysql_close(c);
        c = NULL;
    }
    if (c == NULL) {
        c = db_connect(p, err);
        if (c == NULL) {
            pthread_mutex_lock(&p->lock);
            p->out--;
            pthread_cond_signal(&p->cond);
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
    }
    return c;
}


void
faas_db_release(faas_db_pool_t *p, MYSQL *c, int broken)
{
    if (c == NULL) {
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->out--;
    if (broken || p->nidle >= p->size) {
        mysql_close(c);
    } else {
        p->idle[p->nidle++] = c;
    }
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}


static int
buf_add(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    char *nb;

    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        nb = realloc(*buf, *cap);
        if (nb == NULL) {
            return -1;
        }
        *buf = nb;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}


static char *
db_vfmt(MYSQL *c, const char *fmt, va_list ap)
{
    char       *buf = NULL, num[32];
    size_t      len = 0, cap = 0, n;
    const char *s;
    const uint8_t *b;
    int         rc = 0;

    if (buf_add(&buf, &len, &cap, "", 0) < 0) {
        return NULL;
    }
    for (; *fmt && rc == 0; fmt++) {
        if (*fmt != '%') {
            rc = buf_add(&buf, &len, &cap, fmt, 1);
            continue;
        }
        fmt++;
        switch (*fmt) {
        case 's':
            s = va_arg(ap, const char *);
            if (s == NULL) {
                rc = buf_add(&buf, &len, &cap, "NULL", 4);
                break;
            }
            n = strlen(s);
            {
                char *e = malloc(n * 2 + 3);
                unsigned long el;
                if (e == NULL) {
                    rc = -1;
                    break;
                }
                e[0] = '\'';
                el = mysql_real_escape_string(c, e + 1, s, n);
                e[el + 1] = '\'';
                rc = buf_add(&buf, &len, &cap, e, el + 2);
                free(e);
            }
            break;
        case 'r':
            s = va_arg(ap, const char *);
            rc = buf_add(&buf, &len, &cap, s, strlen(s));
            break;
        case 'd':
            snprintf(num, sizeof(num), "%d", va_arg(ap, int));
            rc = buf_add(&buf, &len, &cap, num, strlen(num));
            break;
        case 'u':
            snprintf(num, sizeof(num), "%u", va_arg(ap, unsigned));
            rc = buf_add(&buf, &len, &cap, num, strlen(num));
            break;
        case 'L':
            snprintf(num, sizeof(num), "%lld", va_arg(ap, long long));
            rc = buf_add(&buf, &len, &cap, num, strlen(num));
            break;
        case 'U':
            snprintf(num, sizeof(num), "%llu", va_arg(ap, unsigned long long));
            rc = buf_add(&buf, &len, &cap, num, strlen(num));
            break;
        case 'x':
            b = va_arg(ap, const uint8_t *);
            n = va_arg(ap, size_t);
            rc = buf_add(&buf, &len, &cap, "X'", 2);
            for (size_t i = 0; i < n && rc == 0; i++) {
                snprintf(num, sizeof(num), "%02x", b[i]);
                rc = buf_add(&buf, &len, &cap, num, 2);
            }
            if (rc == 0) {
                rc = buf_add(&buf, &len, &cap, "'", 1);
            }
            break;
        case '%':
            rc = buf_add(&buf, &len, &cap, "%", 1);
            break;
        default:
            rc = -1;
        }
    }
    if (rc < 0) {
        free(buf);
        return NULL;
    }
    return buf;
}


char *
faas_db_fmt(MYSQL *c, const char *fmt, ...)
{
    va_list ap;
    char   *q;

    va_start(ap, fmt);
    q = db_vfmt(c, fmt, ap);
    va_end(ap);
    return q;
}


static int
db_error(MYSQL *c, faas_error_t *err)
{
    unsigned no = mysql_errno(c);

    faas_error_set(err, 0, "mysql: %s", mysql_error(c));
    if (no == CR_SERVER_GONE_ERROR || no == CR_SERVER_LOST
        || no == CR_CONNECTION_ERROR || no == CR_CONN_HOST_ERROR
        || no == ER_SERVER_SHUTDOWN || no == CR_COMMANDS_OUT_OF_SYNC
        || no == ER_CONNECTION_KILLED) {
        err->code = FAAS_E_UNAVAILABLE;
    } else if (no == ER_LOCK_WAIT_TIMEOUT || no == ER_LOCK_DEADLOCK) {
        /* Transient: the client may retry (503). */
        err->code = FAAS_E_UNAVAILABLE;
    } else if (no == ER_DUP_ENTRY) {
        err->code = FAAS_E_EXISTS;
    } else {
        err->code = 0;   /* our bug, not the client's: 500 */
    }
    return -1;
}


int
faas_db_broken(const faas_error_t *err)
{
    return err->code == FAAS_E_UNAVAILABLE;
}


static int
db_run(MYSQL *c, faas_error_t *err, const char *fmt, va_list ap)
{
    cleanup_free char *q = db_vfmt(c, fmt, ap);

    if (q == NULL) {
        return faas_error_set(err, ENOMEM, "query format");
    }
    if (mysql_query(c, q) != 0) {
        return db_error(c, err);
    }
    return 0;
}


long long
faas_db_exec(MYSQL *c, faas_error_t *err, const char *fmt, ...)
{
    va_list ap;
    int     rc;

    va_start(ap, fmt);
    rc = db_run(c, err, fmt, ap);
    va_end(ap);
    if (rc < 0) {
        return rc;
    }
    return (long long) mysql_affected_rows(c);
}


int
faas_db_query(MYSQL *c, MYSQL_RES **res, faas_error_t *err,
              const char *fmt, ...)
{
    va_list ap;
    int     rc;

    va_start(ap, fmt);
    rc = db_run(c, err, fmt, ap);
    va_end(ap);
    if (rc < 0) {
        return rc;
    }
    *res = mysql_store_result(c);
    if (*res == NULL) {
        return db_error(c, err);
    }
    return 0;
}


/* Runs a multi-statement migration, draining every result. */
static int
db_multi(MYSQL *c, const char *sql, faas_error_t *err)
{
    MYSQL_RES *r;
    int        st;

    if (mysql_query(c, sql) != 0) {
        return db_error(c, err);
    }
    do {
        r = mysql_store_result(c);
        if (r != NULL) {
            mysql_free_result(r);
        }
        st = mysql_next_result(c);
        if (st > 0) {
            return db_error(c, err);
        }
    } while (st == 0);
    return 0;
}


int
faas_db_migrate(faas_db_pool_t *p, faas_error_t *err)
{
    MYSQL     *c;
    MYSQL_RES *res;
    MYSQL_ROW  row;
    int        have = 0, rc = 0;
    size_t     i;

    c = faas_db_acquire(p, err);
    if (c == NULL) {
        return -1;
    }
    rc = faas_db_exec(c, err, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                      " version INT UNSIGNED NOT NULL PRIMARY KEY,"
                      " applied_at TIMESTAMP NOT NULL"
                      " DEFAULT CURRENT_TIMESTAMP) ENGINE=InnoDB") < 0;
    /* One registry migrates at a time. */
    if (!rc) {
        rc = faas_db_query(c, &res, err,
                           "SELECT GET_LOCK('faas_migrate', 30)") < 0;
        if (!rc) {
            mysql_free_result(res);
        }
    }
    if (!rc) {
        rc = faas_db_query(c, &res, err,
                           "SELECT COALESCE(MAX(version), 0)"
                           " FROM schema_migrations") < 0;
        if (!rc) {
            row = mysql_fetch_row(res);
            have = row && row[0] ? atoi(row[0]) : 0;
            mysql_free_result(res);
        }
    }
    for (i = (size_t) have;
         !rc && i < sizeof(migrations) / sizeof(migrations[0]); i++) {
        faas_info(NULL, "applying schema migration %zu", i + 1);
        rc = db_multi(c, migrations[i], err) < 0;
        if (!rc) {
            rc = faas_db_exec(c, err, "INSERT INTO schema_migrations (version)"
                              " VALUES (%u)", (unsigned) (i + 1)) < 0;
        }
        if (rc) {
            faas_error_wrap(err, "migration %zu", i + 1);
        }
    }
    if (!rc) {
        faas_db_exec(c, err, "DO RELEASE_LOCK('faas_migrate')");
    }
    faas_db_release(p, c, rc);
    return rc ? -1 : 0;
}

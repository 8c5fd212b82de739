/*
 * faas-registry -c <config.json>
 *
 * The management API of the platform (docs/DESIGN.md sections 7, 8): functions,
 * versions, access keys and execution records, with MySQL as the truth, the
 * code in the blob store and a mirror of what the gateway needs in Redis.
 * SIGTERM/SIGINT: clean exit. SIGHUP: reopen the log file.
 */
#include "registry.h"
#include "ids.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "log.h"
#include "notify.h"

static const char *const string_keys[] = {
    "socket", "mysql_host", "mysql_socket", "mysql_user", "mysql_password",
    "mysql_database", "store_url", "redis", "redis_password", "redis_sentinels",
    "redis_master", "master_key",
    "admin_subject", "key_digest_secret", "records_mongodb_uri", "python",
    "node", "log_file", "log_level", "tmp_dir", "syntax_check_user",
    "socket_group", "metrics_listen", NULL };
static const char *const int_keys[] = {
    "mysql_port", "max_upload_bytes", "max_zip_entries", "max_unzipped_bytes",
    "max_zip_ratio", "records_batch", "records_interval_ms", "records_lock_ms",
    "syntax_check_timeout_ms", "mirror_repair_interval_ms", "db_pool_size",
    "mysql_timeout_s", "mysql_start_wait_s", "owner_max_functions",
    "owner_max_memory_mb", "owner_max_concurrency", "syntax_check_memory_mb",
    "syntax_check_concurrency", NULL };
/* Every integer key's range; checked before any is used. */
static const struct {
    const char *key;
    long long   lo, hi;
} int_ranges[] = {
    { "mysql_port", 1, 65535 },
    { "max_upload_bytes", 1024, 1LL << 34 },
    { "max_zip_entries", 1, 10000000 },
    { "max_unzipped_bytes", 1024, 1LL << 40 },
    { "max_zip_ratio", 2, 1000000 },
    { "records_batch", 1, 10000 },
    { "records_interval_ms", 1, 3600000 },
    { "records_lock_ms", 100, 3600000 },
    { "syntax_check_timeout_ms", 100, 3600000 },
    { "mirror_repair_interval_ms", 100, 86400000 },
    { "db_pool_size", 1, 1024 },
    { "mysql_timeout_s", 1, 3600 },
    { "mysql_start_wait_s", 0, 86400 },
    { "owner_max_functions", 0, 1000000000 },
    { "owner_max_memory_mb", 0, 1LL << 40 },
    { "owner_max_concurrency", 0, 1000000000 },
    { "syntax_check_memory_mb", 64, 65536 },
    { "syntax_check_concurrency", 1, 1024 },
};
/* Lists; admin_subjects() checks their types. */
static const char *const list_keys[] = { "admin_subjects", NULL };
static const char *const store_keys[] = { FAAS_BLOB_CONFIG_KEYS, NULL };
static const char *const *const known_keys[] = { string_keys, int_keys,
                                                  store_keys, list_keys, NULL };


static int
usage(void)
{
    fprintf(stderr, "usage: faas-registry -c <config.json>\n");
    return 2;
}


/*
 * admin_subjects (a list) and admin_subject (one, kept for older configs)
 * into one array of valid subjects (reg->admin_subjects, freed at exit).
 */
static int
admin_subjects(faas_registry_t *reg, faas_error_t *err)
{
    json_t     *list = json_object_get(reg->cfg, "admin_subjects");
    json_t     *all = json_array(), *v;
    const char *one = faas_config_string(reg->cfg, "admin_subject", NULL);
    size_t      i;

    reg->admin_subjects = all;
    if (list != NULL && !json_is_array(list)) {
        return faas_error_set(err, 0, "config: admin_subjects must be a list"
                              " of subjects");
    }
    json_array_foreach(list, i, v) {
        json_array_append(all, v);
    }
    if (one != NULL && one[0] != '\0') {
        json_array_append_new(all, json_string(one));
    }
    json_array_foreach(all, i, v) {
        if (!json_is_string(v)
            || !faas_subject_valid(json_string_value(v),
                                   json_string_length(v))) {
            return faas_error_set(err, 0, "config: an admin subject must"
                                  " match [A-Za-z0-9._@:-]{1,128}");
        }
    }
    return 0;
}


static int
check_ranges(const json_t *cfg, faas_error_t *err)
{
    json_t *v;
    size_t  i;

    for (i = 0; i < sizeof(int_ranges) / sizeof(int_ranges[0]); i++) {
        v = json_object_get(cfg, int_ranges[i].key);
        if (v != NULL && (json_integer_value(v) < int_ranges[i].lo
                          || json_integer_value(v) > int_ranges[i].hi)) {
            return faas_error_set(err, 0, "config: %s is out of range:"
                                  " must be %lld..%lld", int_ranges[i].key,
                                  int_ranges[i].lo, int_ranges[i].hi);
        }
    }
    return 0;
}


static int
setup(faas_registry_t *reg, faas_error_t *err)
{
    const char *s;
    long        mem, conc;
    long long   wait_s;
    int         tries = 0;

    if (faas_config_check_known(reg->cfg, known_keys, err) < 0
        || faas_config_check_types(reg->cfg, string_keys, int_keys, err) < 0
        || check_ranges(reg->cfg, err) < 0) {
        return -1;
    }
    if (faas_config_require_string(reg->cfg, "master_key", &s, err) < 0
        || faas_keys_parse_master(s, reg->master_key, err) < 0) {
        return -1;
    }
    if (faas_config_require_string(reg->cfg, "key_digest_secret",
                                   &reg->digest_secret, err) < 0) {
        return -1;
    }
    if (strlen(reg->digest_secret) < 16) {
        return faas_error_set(err, 0, "config: key_digest_secret must have"
                              " at least 16 characters");
    }
    if (admin_subjects(reg, err) < 0) {
        return -1;
    }
    reg->owner_max_functions = faas_config_int(reg->cfg,
                                               "owner_max_functions", 0);
    reg->owner_max_memory_mb = faas_config_int(reg->cfg,
                                               "owner_max_memory_mb", 0);
    reg->owner_max_concurrency = faas_config_int(reg->cfg,
                                                 "owner_max_concurrency", 0);
    reg->max_upload_bytes =
        (size_t) faas_config_int(reg->cfg, "max_upload_bytes", 50 << 20);
    reg->max_zip_entries = (long) faas_config_int(reg->cfg, "max_zip_entries",
                                                  10000);
    reg->max_unzipped_bytes =
        (size_t) faas_config_int(reg->cfg, "max_unzipped_bytes", 250 << 20);
    reg->max_zip_ratio = (long) faas_config_int(reg->cfg, "max_zip_ratio",
                                                100);
    reg->python = faas_config_string(reg->cfg, "python", "/usr/bin/python3");
    reg->node = faas_config_string(reg->cfg, "node", "/usr/bin/node");
    reg->syntax_check_timeout_ms =
        (long) faas_config_int(reg->cfg, "syntax_check_timeout_ms", 10000);
    reg->tmp_dir = faas_config_string(reg->cfg, "tmp_dir", "/tmp");
    reg->records_batch = (long) faas_config_int(reg->cfg, "records_batch",
                                                500);
    reg->records_interval_ms =
        (long) faas_config_int(reg->cfg, "records_interval_ms", 1000);
    reg->mirror_repair_interval_ms =
        (long) faas_config_int(reg->cfg, "mirror_repair_interval_ms", 60000);
    mem = (long) faas_config_int(reg->cfg, "syntax_check_memory_mb", 512);
    conc = (long) faas_config_int(reg->cfg, "syntax_check_concurrency", 2);
    if (faas_zip_setup(faas_config_string(reg->cfg, "syntax_check_user",
                                          "nobody"),
                       mem, (int) conc, err) < 0) {
        return faas_error_wrap(err, "config");
    }

    if (faas_config_require_string(reg->cfg, "socket", &s, err) < 0
        || faas_config_require_string(reg->cfg, "store_url", &s, err) < 0) {
        return -1;
    }
    reg->store = faas_blob_open(s, reg->cfg, err);
    if (reg->store == NULL) {
        return faas_error_wrap(err, "store %s", s);
    }
    reg->mirror = faas_mirror_open(reg, err);
    if (reg->mirror == NULL) {
        return -1;
    }
    s = faas_config_string(reg->cfg, "records_mongodb_uri", NULL);
    if (s != NULL && s[0] != '\0') {
        reg->mongo = faas_mongo_open(s, err);
        if (reg->mongo == NULL) {
            return -1;
        }
    }
    /* Everything checked: now MySQL. */
    reg->db = faas_db_open(reg->cfg,
                           (int) faas_config_int(reg->cfg, "db_pool_size", 8),
                           err);
    if (reg->db == NULL) {
        return -1;
    }
    /* MySQL may still be starting: wait a little before giving up. */
    wait_s = faas_config_int(reg->cfg, "mysql_start_wait_s", 30);
    while (faas_db_migrate(reg->db, err) < 0) {
        if (err->code != FAAS_E_UNAVAILABLE || ++tries > wait_s * 4) {
            return faas_error_wrap(err, "schema migrations");
        }
        usleep(250000);
    }
    return 0;
}


int
main(int argc, char **argv)
{
    faas_registry_t reg;
    faas_error_t    err;
    sigset_t        set;
    const char     *cfgpath = NULL, *sock;
    int             opt, sig, rc = 1;

    while ((opt = getopt(argc, argv, "c:")) != -1) {
        if (opt == 'c') {
            cfgpath = optarg;
        } else {
            return usage();
        }
    }
    if (cfgpath == NULL) {
        return usage();
    }
    memset(&reg, 0, sizeof(reg));
    faas_error_clear(&err);
    reg.cfg = faas_config_load(cfgpath, &err);
    if (reg.cfg == NULL) {
        fprintf(stderr, "faas-registry: %s\n", err.msg);
        return 1;
    }
    if (faas_log_init("registry", faas_config_string(reg.cfg, "log_file",
                                                     NULL),
                      faas_config_string(reg.cfg, "log_level", "info")) < 0) {
        fprintf(stderr, "faas-registry: cannot open the log file\n");
        json_decref(reg.cfg);
        return 1;
    }
    /* Signals go to the main thread only (sigwait below). */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    if (setup(&reg, &err) < 0 || faas_registry_metrics_start(&reg, &err) < 0
        || faas_http_start(&reg, &err) < 0
        || faas_mirror_start(reg.mirror, &err) < 0
        || faas_records_start(&reg, &err) < 0) {
        if (!faas_log_to_stderr()) {
            faas_err(NULL, "start: %s", err.msg);
        }
        fprintf(stderr, "faas-registry: %s\n", err.msg);
        goto out;
    }
    faas_info(NULL, "faas-registry ready (records to %s)",
              reg.mongo ? "mongodb" : "mysql");
    faas_notify_ready("listening on %s",
                      faas_config_string(reg.cfg, "socket", ""));
    for (;;) {
        if (sigwait(&set, &sig) != 0) {
            continue;
        }
        if (sig == SIGHUP) {
            faas_log_reopen();
            continue;
        }
        faas_info(NULL, "signal %d: stopping", sig);
        faas_notify_stopping("signal %d: stopping", sig);
        break;
    }
    rc = 0;

out:
    faas_http_stop();
    faas_records_stop();
    faas_mirror_close(reg.mirror);
    faas_mongo_close(reg.mongo);
    if (reg.store != NULL) {
        faas_blob_close(reg.store);
    }
    faas_db_close(reg.db);
    sock = faas_config_string(reg.cfg, "socket", NULL);
    if (sock != NULL && rc == 0) {
        unlink(sock);
    }
    json_decref(reg.admin_subjects);
    json_decref(reg.cfg);
    return rc;
}

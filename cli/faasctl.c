/*
 * faasctl: deploy, invoke and inspect functions through the platform's
 * nginx (the management API under /v1, invocations under /fn).
 *
 *   faasctl [global options] <command> [arguments and options]
 *
 * Exit codes: 0 ok, 1 the server answered an error, 2 usage or local input
 * error, 3 the server could not be reached, 4 not found (HTTP 404).
 * Run `faasctl --help` for the commands and options.
 */
#include "faasctl.h"
#include "ids.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <jansson.h>

#include "base64.h"
#include "cleanup.h"


#define MAX_ENV      256
#define MAX_HEADERS  64
#define DATA_MAX     (64 * 1024 * 1024)


/* Options, each with a bit; a command lists the bits it accepts. */
enum {
    O_NAME = 1 << 0, O_RUNTIME = 1 << 1, O_HANDLER = 1 << 2,
    O_MEMORY = 1 << 3, O_TIMEOUT = 1 << 4, O_ENV = 1 << 5,
    O_PUBLIC = 1 << 6, O_CONC = 1 << 7, O_KEEP = 1 << 8,
    O_DATA = 1 << 9, O_METHOD = 1 << 10, O_PATH = 1 << 11,
    O_HEADER = 1 << 12, O_KEY = 1 << 13, O_TTL = 1 << 14,
    O_ISSUER = 1 << 15, O_AUD = 1 << 16, O_LIMIT = 1 << 17,
    O_BEFORE = 1 << 18, O_PRIVATE = 1 << 19, O_FOLLOW = 1 << 20,
    O_ITER = 1 << 21,
};

enum {
    OPT_URL = 256, OPT_SOCKET, OPT_TOKEN, OPT_SECRET, OPT_SUBJECT, OPT_USER,
    OPT_CACERT, OPT_REQ_TIMEOUT, OPT_JSON, OPT_NAME, OPT_RUNTIME,
    OPT_HANDLER, OPT_MEMORY, OPT_TIMEOUT, OPT_ENV, OPT_PUBLIC, OPT_PRIVATE,
    OPT_CONC, OPT_KEEP, OPT_DATA, OPT_METHOD, OPT_PATH, OPT_HEADER, OPT_KEY,
    OPT_TTL, OPT_ISSUER, OPT_AUD, OPT_LIMIT, OPT_BEFORE, OPT_FOLLOW,
    OPT_ITER,
};

typedef struct {
    fctl_conn_t  conn;
    const char  *secret_file;
    const char  *subject;
    int          json;
    unsigned     given;          /* O_* bits seen on the command line */
    const char  *name, *runtime, *handler;
    long         memory, timeout, conc, keep, ttl, limit, iterations;
    int          follow;
    int          public;         /* -1 unset, 0 --private, 1 --public */
    const char  *env[MAX_ENV];
    size_t       nenv;
    const char  *data, *method, *path, *key;
    const char  *headers[MAX_HEADERS + 1];
    size_t       nheaders;
    const char  *issuer, *audience, *before;
    char        *minted;
} fctl_t;

typedef struct {
    const char *name;
    int       (*run)(fctl_t *f, int argc, char **argv);
    unsigned    opts;
    int         min_args, max_args;
    const char *usage;
} fctl_cmd_t;


static const char *prog = "faasctl";
static const char *cmd_name = "";


static int
fail(int code, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: %s%s", prog, cmd_name, cmd_name[0] ? ": " : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}


/* Exit code and message for an HTTP error answer. */
static int
http_fail(const fctl_resp_t *r)
{
    cleanup_json json_t *j = NULL;
    const char          *msg = NULL, *code = NULL;
    char                 text[256];
    size_t               n;

    if (r->body && r->len) {
        j = json_loadb(r->body, r->len, 0, NULL);
    }
    if (j) {
        json_t *e = json_object_get(j, "error");

        msg = json_string_value(json_object_get(e, "message"));
        code = json_string_value(json_object_get(e, "code"));
        if (msg == NULL) {
            msg = json_string_value(json_object_get(j, "errorMessage"));
            code = json_string_value(json_object_get(j, "errorType"));
        }
    }
    if (msg == NULL && r->www_auth
        && (msg = strstr(r->www_auth, "error_description=\"")) != NULL) {
        /* the gateway's reason for refusing a token */
        msg += sizeof("error_description=\"") - 1;
        n = strcspn(msg, "\"");
        n = n < sizeof(text) - 1 ? n : sizeof(text) - 1;
        memcpy(text, msg, n);
        text[n] = '\0';
        msg = text;
    } else if (msg == NULL && r->body && strstr(r->body, "<title>")) {
        /* nginx's own error page: its title, "401 Authorization Required" */
        msg = strstr(r->body, "<title>") + 7;
        n = strcspn(msg, "<");
        n = n < sizeof(text) - 1 ? n : sizeof(text) - 1;
        memcpy(text, msg, n);
        text[n] = '\0';
        msg = text;
    }
    if (msg == NULL) {
        n = r->len < sizeof(text) - 1 ? r->len : sizeof(text) - 1;
        memcpy(text, r->body ? r->body : "", n);
        text[n] = '\0';
        /* first line of a text/HTML body */
        text[strcspn(text, "\r\n")] = '\0';
        msg = text[0] ? text : "(no message)";
    }
    fail(0, "%s (HTTP %ld%s%s)%s", msg, r->status, code ? " " : "",
         code ? code : "",
         r->status == 401 ? "; set FAAS_TOKEN, or FAAS_JWT_SECRET_FILE"
                            " to mint one" : "");
    return r->status == 404 ? FCTL_EXIT_NOT_FOUND : FCTL_EXIT_FAILED;
}


/* One request; on no answer prints why and returns -FCTL_EXIT_UNREACHABLE. */
static int
request(fctl_t *f, const char *method, const char *path, const char *ctype,
        const void *body, size_t len, const char *const *headers,
        fctl_resp_t *r)
{
    faas_error_t err;

    faas_error_clear(&err);
    if (fctl_http(&f->conn, method, path, ctype, body, len, headers, r,
                  &err) < 0) {
        fail(0, "%s", err.msg);
        return -FCTL_EXIT_UNREACHABLE;
    }
    return 0;
}


/* A JSON request and answer; returns 0 with *out on 2xx, else an exit code. */
static int
api(fctl_t *f, const char *method, const char *path, json_t *body,
    json_t **out)
{
    cleanup_free char *text = NULL;
    fctl_resp_t        r;
    int                rc;

    *out = NULL;
    if (body) {
        text = json_dumps(body, JSON_COMPACT);
        if (text == NULL) {
            return fail(FCTL_EXIT_USAGE, "cannot encode the request");
        }
    }
    rc = request(f, method, path, "application/json", text,
                 text ? strlen(text) : 0, NULL, &r);
    if (rc < 0) {
        return -rc;
    }
    if (r.status < 200 || r.status > 299) {
        rc = http_fail(&r);
        fctl_resp_free(&r);
        return rc;
    }
    *out = json_loadb(r.body, r.len, 0, NULL);
    fctl_resp_free(&r);
    if (*out == NULL) {
        return fail(FCTL_EXIT_FAILED, "the answer is not JSON");
    }
    return 0;
}


static void
print_json(json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
    fputc('\n', stdout);
}


static char *
escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *out = e ? strdup(e) : NULL;

    curl_free(e);
    return out;
}


/* Function names are checked here too, so a typo never reaches a URL. */
static int
check_name(const char *s)
{
    if (!faas_name_valid(s, strlen(s))) {
        return fail(FCTL_EXIT_USAGE, "invalid function name \"%s\" "
                    "(expected [a-z][a-z0-9-]{0,62})", s);
    }
    return 0;
}


/* Reads a whole file ("-" = stdin) up to DATA_MAX bytes. */
static int
slurp(const char *path, char **out, size_t *len)
{
    FILE   *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char   *buf = NULL, *p;
    size_t  n = 0, cap = 0, got;

    if (fp == NULL) {
        return fail(FCTL_EXIT_USAGE, "%s: %s", path, strerror(errno));
    }
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = cap ? cap * 2 : 65536 * 2;
            p = realloc(buf, cap);
            if (p == NULL) {
                free(buf);
                if (fp != stdin) {
                    fclose(fp);
                }
                return fail(FCTL_EXIT_USAGE, "out of memory");
            }
            buf = p;
        }
        got = fread(buf + n, 1, 65536, fp);
        n += got;
        if (n > DATA_MAX) {
            free(buf);
            if (fp != stdin) {
                fclose(fp);
            }
            return fail(FCTL_EXIT_USAGE, "%s: larger than %d bytes", path,
                        DATA_MAX);
        }
        if (got < 65536) {
            break;
        }
    }
    if (ferror(fp)) {
        free(buf);
        if (fp != stdin) {
            fclose(fp);
        }
        return fail(FCTL_EXIT_USAGE, "%s: read error", path);
    }
    if (fp != stdin) {
        fclose(fp);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}


/* --- commands ------------------------------------------------------------ */


static int
cmd_token(fctl_t *f, int argc, char **argv)
{
    faas_error_t  err;
    char         *tok;

    (void) argc;
    (void) argv;
    if (f->secret_file == NULL) {
        return fail(FCTL_EXIT_USAGE, "no secret: pass --secret-file FILE or "
                    "set FAAS_JWT_SECRET_FILE");
    }
    faas_error_clear(&err);
    tok = fctl_token_mint(f->secret_file, f->subject, f->ttl, f->issuer,
                          f->audience, &err);
    if (tok == NULL) {
        return fail(FCTL_EXIT_USAGE, "%s", err.msg);
    }
    printf("%s\n", tok);
    free(tok);
    return 0;
}


/* The env object of --env K=V options. */
static json_t *
env_object(fctl_t *f)
{
    json_t *env = json_object();
    size_t  i;

    for (i = 0; i < f->nenv; i++) {
        const char        *eq = strchr(f->env[i], '=');
        cleanup_free char *k = strndup(f->env[i], (size_t) (eq - f->env[i]));

        json_object_set_new(env, k, json_string(eq + 1));
    }
    return env;
}


static int
deploy_create(fctl_t *f, const unsigned char *zip, size_t zlen)
{
    cleanup_json json_t *body = NULL, *out = NULL;
    cleanup_free char   *code = NULL;
    int                  rc;

    if (f->runtime == NULL || f->handler == NULL) {
        return fail(FCTL_EXIT_USAGE, "a new function needs --runtime and "
                    "--handler");
    }
    code = faas_base64_encode(zip, zlen, NULL);
    if (code == NULL) {
        return fail(FCTL_EXIT_USAGE, "out of memory");
    }
    body = json_pack("{s:s,s:s,s:s,s:{s:s}}", "name", f->name, "runtime",
                     f->runtime, "handler", f->handler, "code", "zip", code);
    if (f->given & O_MEMORY) {
        json_object_set_new(body, "memory_mb", json_integer(f->memory));
    }
    if (f->given & O_TIMEOUT) {
        json_object_set_new(body, "timeout_ms", json_integer(f->timeout));
    }
    if (f->given & O_CONC) {
        json_object_set_new(body, "max_concurrency", json_integer(f->conc));
    }
    if (f->given & O_KEEP) {
        json_object_set_new(body, "keep_alive_s", json_integer(f->keep));
    }
    if (f->nenv) {
        json_object_set_new(body, "env", env_object(f));
    }
    if (f->public >= 0) {
        json_object_set_new(body, "public", json_boolean(f->public));
    }
    rc = api(f, "POST", "/v1/functions", body, &out);
    if (rc) {
        return rc;
    }
    if (f->json) {
        print_json(out);
    } else {
        printf("created %s version %lld\n", f->name, (long long)
               json_integer_value(json_object_get(out, "version")));
    }
    return 0;
}


static int
deploy_update(fctl_t *f, json_t *cur, const unsigned char *zip, size_t zlen)
{
    cleanup_json json_t *patch = json_object(), *out = NULL, *env = NULL;
    cleanup_free char   *path = NULL, *ename = NULL, *eh = NULL;
    const char          *rt;
    fctl_resp_t          r;
    int                  rc;

    rt = json_string_value(json_object_get(cur, "runtime"));
    if (f->runtime && rt && strcmp(rt, f->runtime) != 0) {
        return fail(FCTL_EXIT_USAGE, "%s runs %s; the runtime of a function "
                    "cannot change (faasctl rm, then deploy)", f->name, rt);
    }
    ename = escape(f->name);
    eh = f->handler ? escape(f->handler) : NULL;
    if (ename == NULL || (f->handler && eh == NULL)
        || asprintf(&path, "/v1/functions/%s/code%s%s", ename,
                    eh ? "?handler=" : "", eh ? eh : "") < 0) {
        return fail(FCTL_EXIT_USAGE, "out of memory");
    }
    rc = request(f, "PUT", path, "application/zip", zip, zlen, NULL, &r);
    if (rc < 0) {
        return -rc;
    }
    if (r.status < 200 || r.status > 299) {
        rc = http_fail(&r);
        fctl_resp_free(&r);
        return rc;
    }
    out = json_loadb(r.body, r.len, 0, NULL);
    fctl_resp_free(&r);

    /* settings: only what was given and differs from the current ones */
#define SET_INT(bit, key, v)                                                 \
    if ((f->given & (bit))                                                   \
        && json_integer_value(json_object_get(cur, key)) != (v)) {           \
        json_object_set_new(patch, key, json_integer(v));                    \
    }
    SET_INT(O_MEMORY, "memory_mb", f->memory);
    SET_INT(O_TIMEOUT, "timeout_ms", f->timeout);
    SET_INT(O_CONC, "max_concurrency", f->conc);
    SET_INT(O_KEEP, "keep_alive_s", f->keep);
#undef SET_INT
    if (f->nenv) {
        env = env_object(f);
        if (!json_equal(env, json_object_get(cur, "env"))) {
            json_object_set(patch, "env", env);
        }
    }
    if (f->public >= 0
        && json_is_true(json_object_get(cur, "public")) != f->public) {
        json_object_set_new(patch, "public", json_boolean(f->public));
    }
    if (json_object_size(patch)) {
        free(path);
        path = NULL;
        if (asprintf(&path, "/v1/functions/%s", ename) < 0) {
            return fail(FCTL_EXIT_USAGE, "out of memory");
        }
        json_decref(out);
        out = NULL;
        rc = api(f, "PATCH", path, patch, &out);
        if (rc) {
            return rc;
        }
    }
    if (f->json) {
        if (out) {
            print_json(out);
        }
    } else {
        printf("updated %s to version %lld\n", f->name, (long long)
               json_integer_value(json_object_get(out, "version")));
    }
    return 0;
}


static int
cmd_deploy(fctl_t *f, int argc, char **argv)
{
    cleanup_free unsigned char *zip = NULL;
    cleanup_free char          *path = NULL, *ename = NULL;
    cleanup_json json_t        *cur = NULL;
    size_t                      zlen;
    faas_error_t                err;
    fctl_resp_t                 r;
    int                         rc;

    (void) argc;
    if (f->name == NULL) {
        return fail(FCTL_EXIT_USAGE, "--name is required");
    }
    if (check_name(f->name)) {
        return FCTL_EXIT_USAGE;
    }
    if (f->runtime && strcmp(f->runtime, "python3") != 0
        && strcmp(f->runtime, "nodejs") != 0) {
        return fail(FCTL_EXIT_USAGE, "--runtime must be python3 or nodejs");
    }
    faas_error_clear(&err);
    if (fctl_pack(argv[0], &zip, &zlen, &err) < 0) {
        return fail(FCTL_EXIT_USAGE, "%s", err.msg);
    }
    ename = escape(f->name);
    if (ename == NULL || asprintf(&path, "/v1/functions/%s", ename) < 0) {
        return fail(FCTL_EXIT_USAGE, "out of memory");
    }
    rc = request(f, "GET", path, NULL, NULL, 0, NULL, &r);
    if (rc < 0) {
        return -rc;
    }
    if (r.status == 404) {
        fctl_resp_free(&r);
        return deploy_create(f, zip, zlen);
    }
    if (r.status != 200) {
        rc = http_fail(&r);
        fctl_resp_free(&r);
        return rc;
    }
    cur = json_loadb(r.body, r.len, 0, NULL);
    fctl_resp_free(&r);
    if (cur == NULL) {
        return fail(FCTL_EXIT_FAILED, "the answer is not JSON");
    }
    return deploy_update(f, cur, zip, zlen);
}


static int
cmd_invoke(fctl_t *f, int argc, char **argv)
{
    cleanup_free char *path = NULL, *body = NULL, *keyh = NULL;
    const char        *hdrs[MAX_HEADERS + 2];
    size_t             blen = 0, i, n = 0;
    const char        *method;
    fctl_resp_t        r;
    int                rc;

    (void) argc;
    if (check_name(argv[0])) {
        return FCTL_EXIT_USAGE;
    }
    if (f->path && f->path[0] != '/') {
        return fail(FCTL_EXIT_USAGE, "--path must start with /");
    }
    if (f->data) {
        if (f->data[0] == '@') {
            rc = slurp(f->data + 1, &body, &blen);
            if (rc) {
                return rc;
            }
        } else {
            body = strdup(f->data);
            if (body == NULL) {
                return fail(FCTL_EXIT_USAGE, "out of memory");
            }
            blen = strlen(f->data);
        }
    }
    method = f->method ? f->method : (f->data ? "POST" : "GET");
    if (asprintf(&path, "/fn/%s%s", argv[0], f->path ? f->path : "") < 0) {
        return fail(FCTL_EXIT_USAGE, "out of memory");
    }
    for (i = 0; i < f->nheaders; i++) {
        hdrs[n++] = f->headers[i];
    }
    if (f->key) {
        if (asprintf(&keyh, "X-Faas-Key: %s", f->key) < 0) {
            return fail(FCTL_EXIT_USAGE, "out of memory");
        }
        hdrs[n++] = keyh;
    }
    hdrs[n] = NULL;
    rc = request(f, method, path,
                 f->data ? (f->data[0] == '{' || f->data[0] == '['
                            ? "application/json" : "application/octet-stream")
                         : NULL,
                 body, blen, hdrs, &r);
    if (rc < 0) {
        return -rc;
    }
    fwrite(r.body, 1, r.len, stdout);
    if (r.len && r.body[r.len - 1] != '\n' && isatty(STDOUT_FILENO)) {
        fputc('\n', stdout);
    }
    fflush(stdout);
    if (f->conn.verbose == 0 && (r.status < 200 || r.status > 299)) {
        fprintf(stderr, "%s: invoke: HTTP %ld%s%s\n", prog, r.status,
                r.request_id ? ", request id " : "",
                r.request_id ? r.request_id : "");
    }
    rc = r.status >= 200 && r.status <= 299 ? 0
         : r.status == 404 ? FCTL_EXIT_NOT_FOUND : FCTL_EXIT_FAILED;
    fctl_resp_free(&r);
    return rc;
}


static int
cmd_ls(fctl_t *f, int argc, char **argv)
{
    cleanup_json json_t *out = NULL;
    json_t              *fn;
    size_t               i;
    int                  rc;

    (void) argc;
    (void) argv;
    rc = api(f, "GET", "/v1/functions", NULL, &out);
    if (rc) {
        return rc;
    }
    if (f->json) {
        print_json(out);
        return 0;
    }
    printf("%-24s %7s %-8s %-24s %6s %8s %6s %s\n", "NAME", "VERSION",
           "RUNTIME", "HANDLER", "MEMORY", "TIMEOUT", "PUBLIC", "OWNER");
    json_array_foreach(json_object_get(out, "functions"), i, fn) {
        printf("%-24s %7lld %-8s %-24s %6lld %8lld %6s %s\n",
               json_string_value(json_object_get(fn, "name")),
               (long long) json_integer_value(json_object_get(fn, "version")),
               json_string_value(json_object_get(fn, "runtime")),
               json_string_value(json_object_get(fn, "handler")),
               (long long) json_integer_value(json_object_get(fn,
                                                              "memory_mb")),
               (long long) json_integer_value(json_object_get(fn,
                                                              "timeout_ms")),
               json_is_true(json_object_get(fn, "public")) ? "yes" : "no",
               json_string_value(json_object_get(fn, "owner")));
    }
    return 0;
}


static int
cmd_info(fctl_t *f, int argc, char **argv)
{
    cleanup_json json_t *out = NULL;
    cleanup_free char   *path = NULL;
    int                  rc;

    (void) argc;
    if (check_name(argv[0])) {
        return FCTL_EXIT_USAGE;
    }
    if (asprintf(&path, "/v1/functions/%s", argv[0]) < 0) {
        return fail(FCTL_EXIT_USAGE, "out of memory");
    }
    rc = api(f, "GET", path, NULL, &out);
    if (rc == 0) {
        print_json(out);
    }
    return rc;
}


static int
check_request_id(const char *s)
{
    size_t n = strspn(s, "0123456789abcdef");

    if (n != 32 || s[n] != '\0') {
        return fail(FCTL_EXIT_USAGE, "invalid request id \"%s\" (32 hex "
                    "digits expected)", s);
    }
    return 0;
}


/*
 * Prints a call's logs, after heading when not NULL; quiet: a 404 returns
 * FCTL_EXIT_NOT_FOUND silently.
 */
static int
print_logs_of(fctl_t *f, const char *name, const char *rid, int quiet,
              const char *heading)
{
    cleanup_free char *path = NULL;
    fctl_resp_t        r;
    int                rc;

    if (asprintf(&path, "/v1/functions/%s/executions/%s/logs", name, rid)
        < 0) {
        return fail(FCTL_EXIT_USAGE, "out of memory");
    }
    rc = request(f, "GET", path, NULL, NULL, 0, NULL, &r);
    if (rc < 0) {
        return -rc;
    }
    if (r.status != 200) {
        rc = quiet && r.status == 404 ? FCTL_EXIT_NOT_FOUND : http_fail(&r);
        fctl_resp_free(&r);
        return rc;
    }
    if (heading) {
        fputs(heading, stdout);
    }
    fwrite(r.body, 1, r.len, stdout);
    if (r.len && r.body[r.len - 1] != '\n') {
        fputc('\n', stdout);
    }
    fflush(stdout);
    fctl_resp_free(&r);
    return 0;
}


static int
print_logs(fctl_t *f, const char *name, const char *rid)
{
    return print_logs_of(f, name, rid, 0, NULL);
}


static void
format_time(long long ms, char *buf, size_t len)
{
    time_t    t = (time_t) (ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + strlen(buf), len - strlen(buf), ".%03lldZ", ms % 1000);
}


/*
 * A call of a page of `logs --follow`: shows it once its log is there (or
 * it has none); a log not stored yet (the agent writes it after answering)
 * is tried again at the next polls, FOLLOW_TRIES times in all.
 */
#define FOLLOW_TRIES  5

static int
follow_one(fctl_t *f, const char *name, json_t *e, json_t *seen,
           json_t *next)
{
    const char *rid = json_string_value(json_object_get(e, "request_id"));
    json_t     *tries = json_object_get(seen, rid ? rid : "");
    json_int_t  n = tries ? json_integer_value(tries) : 0;
    char        when[40], heading[128];
    int         rc;

    if (rid == NULL) {
        return 0;
    }
    if (n < 0 || json_string_length(json_object_get(e, "log_key")) == 0) {
        json_object_set_new(next, rid, json_integer(-1));
        return 0;
    }
    format_time(json_integer_value(json_object_get(e, "timestamp_ms")),
                when, sizeof(when));
    snprintf(heading, sizeof(heading), "=== %s %s %s\n", when, rid,
             json_string_value(json_object_get(e, "status")));
    rc = print_logs_of(f, name, rid, n + 1 < FOLLOW_TRIES, heading);
    if (rc == FCTL_EXIT_NOT_FOUND && n + 1 < FOLLOW_TRIES) {
        json_object_set_new(next, rid, json_integer(n + 1));
        return 0;
    }
    json_object_set_new(next, rid, json_integer(-1));
    return rc == FCTL_EXIT_NOT_FOUND ? 0 : rc;
}


/*
 * logs --follow: polls the newest page of executions every second; calls
 * not seen yet, oldest first, get their output printed. The calls of the
 * last page are remembered (a call drops out of the page only once newer
 * ones are there, so it never comes back).
 */
static int
follow_logs(fctl_t *f, const char *name)
{
    cleanup_json json_t *seen = json_object();
    cleanup_free char   *path = NULL;
    json_t              *out, *list, *next;
    size_t               i;
    int                  rc, down = 0;

    if (asprintf(&path, "/v1/functions/%s/executions?limit=%ld", name,
                 f->limit) < 0) {
        return fail(FCTL_EXIT_USAGE, "out of memory");
    }
    for (;;) {
        rc = api(f, "GET", path, NULL, &out);
        if (rc == FCTL_EXIT_UNREACHABLE) {
            if (!down++) {
                fail(0, "logs: the server cannot be reached; trying again");
            }
            sleep(1);
            continue;
        }
        if (rc) {
            return rc;
        }
        down = 0;
        next = json_object();
        list = json_object_get(out, "executions");
        for (i = json_array_size(list); i-- > 0;) {
            rc = follow_one(f, name, json_array_get(list, i), seen, next);
            if (rc) {
                json_decref(next);
                json_decref(out);
                return rc;
            }
        }
        json_decref(out);
        json_object_clear(seen);
        json_object_update(seen, next);
        json_decref(next);
        sleep(1);
    }
}


static int
cmd_logs(fctl_t *f, int argc, char **argv)
{
    cleanup_json json_t *out = NULL;
    cleanup_free char   *path = NULL;
    json_t              *list, *e;
    char                 when[40];
    size_t               i;
    int                  rc, shown = 0;

    if (check_name(argv[0])) {
        return FCTL_EXIT_USAGE;
    }
    if (argc == 2) {
        if (f->follow) {
            return fail(FCTL_EXIT_USAGE, "logs --follow takes a function, "
                        "not a request id");
        }
        if (check_request_id(argv[1])) {
            return FCTL_EXIT_USAGE;
        }
        return print_logs(f, argv[0], argv[1]);
    }
    if (f->follow) {
        return follow_logs(f, argv[0]);
    }
    /* the logs of the latest executions, oldest first */
    if (asprintf(&path, "/v1/functions/%s/executions?limit=%ld", argv[0],
                 f->limit) < 0) {
        return fail(FCTL_EXIT_USAGE, "out of memory");
    }
    rc = api(f, "GET", path, NULL, &out);
    if (rc) {
        return rc;
    }
    list = json_object_get(out, "executions");
    for (i = json_array_size(list); i-- > 0;) {
        e = json_array_get(list, i);
        if (json_string_length(json_object_get(e, "log_key")) == 0) {
            continue;
        }
        format_time(json_integer_value(json_object_get(e, "timestamp_ms")),
                    when, sizeof(when));
        printf("=== %s %s %s\n", when,
               json_string_value(json_object_get(e, "request_id")),
               json_string_value(json_object_get(e, "status")));
        fflush(stdout);
        rc = print_logs(f, argv[0],
                        json_string_value(json_object_get(e, "request_id")));
        if (rc && rc != FCTL_EXIT_NOT_FOUND) {
            return rc;
        }
        shown++;
    }
    if (shown == 0) {
        fprintf(stderr, "%s: logs: no logged execution among the last %ld "
                "of %s\n", prog, f->limit, argv[0]);
    }
    return 0;
}


static int
cmd_executions(fctl_t *f, int argc, char **argv)
{
    cleanup_json json_t *out = NULL;
    cleanup_free char   *path = NULL, *eb = NULL;
    json_t              *e;
    const char          *trace;
    char                 when[40];
    size_t               i;
    int                  rc;

    (void) argc;
    if (check_name(argv[0])) {
        return FCTL_EXIT_USAGE;
    }
    eb = f->before ? escape(f->before) : NULL;
    if (asprintf(&path, "/v1/functions/%s/executions?limit=%ld%s%s", argv[0],
                 f->limit, eb ? "&before=" : "", eb ? eb : "") < 0) {
        return fail(FCTL_EXIT_USAGE, "out of memory");
    }
    rc = api(f, "GET", path, NULL, &out);
    if (rc) {
        return rc;
    }
    if (f->json) {
        print_json(out);
        return 0;
    }
    printf("%-24s %-32s %4s %-6s %-15s %4s %10s %10s %10s %s\n", "TIME",
           "REQUEST-ID", "VER", "START", "STATUS", "HTTP", "RUN-MS",
           "TOTAL-MS", "MEM-KB", "TRACE-ID");
    json_array_foreach(json_object_get(out, "executions"), i, e) {
        format_time(json_integer_value(json_object_get(e, "timestamp_ms")),
                    when, sizeof(when));
        trace = json_string_value(json_object_get(e, "trace_id"));
        printf("%-24s %-32s %4lld %-6s %-15s %4lld %10.3f %10.3f %10lld "
               "%s\n",
               when, json_string_value(json_object_get(e, "request_id")),
               (long long) json_integer_value(json_object_get(e, "version")),
               json_string_value(json_object_get(e, "start_type")),
               json_string_value(json_object_get(e, "status")),
               (long long) json_integer_value(json_object_get(e,
                                                              "http_status")),
               json_integer_value(json_object_get(e, "duration_us")) / 1e3,
               json_integer_value(json_object_get(e, "total_us")) / 1e3,
               (long long) json_integer_value(json_object_get(e,
                                                   "memory_bytes")) / 1024,
               trace && trace[0] ? trace : "-");
    }
    e = json_object_get(out, "next_before");
    if (json_is_string(e)) {
        fprintf(stderr, "more: faasctl executions %s --before %s\n", argv[0],
                json_string_value(e));
    }
    return 0;
}


#define TOP_WINDOW_S  60

/* One refresh of `top`: a row per function of GET /v1/functions. */
static int
top_once(fctl_t *f)
{
    cleanup_json json_t *fns = NULL;
    json_t              *fn, *execs;
    fctl_top_stats_t     st;
    struct timespec      now;
    const char          *name;
    char                *path;
    size_t               i;
    int                  rc;

    rc = api(f, "GET", "/v1/functions", NULL, &fns);
    if (rc) {
        return rc;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    if (isatty(STDOUT_FILENO)) {
        fputs("\033[H\033[2J", stdout);
    }
    fctl_top_header(stdout, TOP_WINDOW_S);
    json_array_foreach(json_object_get(fns, "functions"), i, fn) {
        name = json_string_value(json_object_get(fn, "name"));
        if (name == NULL
            || asprintf(&path, "/v1/functions/%s/executions?limit=%d", name,
                        FCTL_TOP_PAGE) < 0) {
            continue;
        }
        rc = api(f, "GET", path, NULL, &execs);
        free(path);
        if (rc == FCTL_EXIT_NOT_FOUND) {
            continue;   /* deleted since the list */
        }
        if (rc) {
            return rc;
        }
        rc = fctl_top_stats(json_object_get(execs, "executions"),
                            (long long) now.tv_sec * 1000
                            + now.tv_nsec / 1000000,
                            TOP_WINDOW_S * 1000LL, &st);
        json_decref(execs);
        if (rc < 0) {
            return fail(FCTL_EXIT_FAILED, "out of memory");
        }
        fctl_top_row(stdout, name, &st);
    }
    fflush(stdout);
    return 0;
}


static int
cmd_top(fctl_t *f, int argc, char **argv)
{
    long  n;
    int   rc;

    (void) argc;
    (void) argv;
    for (n = 0; f->iterations == 0 || n < f->iterations; n++) {
        if (n > 0) {
            sleep(1);
        }
        rc = top_once(f);
        if (rc) {
            return rc;
        }
    }
    return 0;
}


static int
check_key_id(const char *s)
{
    size_t n = strspn(s, "0123456789");

    if (n == 0 || n > 18 || s[n] != '\0') {
        return fail(FCTL_EXIT_USAGE, "invalid key id \"%s\" (a number from "
                    "`faasctl keys ls`)", s);
    }
    return 0;
}


static int
cmd_keys(fctl_t *f, int argc, char **argv)
{
    cleanup_json json_t *out = NULL;
    cleanup_free char   *path = NULL;
    const char          *sub = argv[0], *name = argv[1];
    json_t              *k;
    size_t               i;
    int                  rc, need_id;

    need_id = strcmp(sub, "rm") == 0 || strcmp(sub, "rotate") == 0;
    if (strcmp(sub, "create") != 0 && strcmp(sub, "ls") != 0 && !need_id) {
        return fail(FCTL_EXIT_USAGE, "unknown keys command \"%s\" (create, "
                    "ls, rotate, rm)", sub);
    }
    if (argc < 2 || argc != 2 + need_id) {
        return fail(FCTL_EXIT_USAGE, "usage: keys %s <name>%s", sub,
                    need_id ? " <key-id>" : "");
    }
    if (check_name(name) || (need_id && check_key_id(argv[2]))) {
        return FCTL_EXIT_USAGE;
    }
    if (strcmp(sub, "create") == 0) {
        rc = asprintf(&path, "/v1/functions/%s/keys", name);
    } else if (strcmp(sub, "ls") == 0) {
        rc = asprintf(&path, "/v1/functions/%s/keys", name);
    } else if (strcmp(sub, "rotate") == 0) {
        rc = asprintf(&path, "/v1/functions/%s/keys/%s/rotate", name,
                      argv[2]);
    } else {
        rc = asprintf(&path, "/v1/functions/%s/keys/%s", name, argv[2]);
    }
    if (rc < 0) {
        return fail(FCTL_EXIT_USAGE, "out of memory");
    }
    rc = api(f, strcmp(sub, "ls") == 0 ? "GET"
                : strcmp(sub, "rm") == 0 ? "DELETE" : "POST",
             path, NULL, &out);
    if (rc) {
        return rc;
    }
    if (f->json) {
        print_json(out);
    } else if (strcmp(sub, "ls") == 0) {
        printf("%-6s %-12s %s\n", "ID", "PREFIX", "CREATED");
        json_array_foreach(json_object_get(out, "keys"), i, k) {
            json_t *c = json_object_get(k, "created_at");

            printf("%-6lld %-12s %s\n",
                   (long long) json_integer_value(json_object_get(k, "id")),
                   json_string_value(json_object_get(k, "prefix")),
                   json_is_string(c) ? json_string_value(c) : "");
        }
    } else if (strcmp(sub, "rm") == 0) {
        printf("revoked key %s of %s\n", argv[2], name);
    } else {
        /* the key alone on stdout, so `KEY=$(faasctl keys create f)` works */
        printf("%s\n", json_string_value(json_object_get(out, "key")));
        fprintf(stderr, "key id %lld of %s; it is shown once: store it now\n",
                (long long) json_integer_value(json_object_get(out, "id")),
                name);
    }
    return 0;
}


static int
cmd_rm(fctl_t *f, int argc, char **argv)
{
    cleanup_json json_t *out = NULL;
    cleanup_free char   *path = NULL;
    int                  rc;

    (void) argc;
    if (check_name(argv[0])) {
        return FCTL_EXIT_USAGE;
    }
    if (asprintf(&path, "/v1/functions/%s", argv[0]) < 0) {
        return fail(FCTL_EXIT_USAGE, "out of memory");
    }
    rc = api(f, "DELETE", path, NULL, &out);
    if (rc == 0) {
        printf("deleted %s\n", argv[0]);
    }
    return rc;
}


static const fctl_cmd_t commands[] = {
    { "token", cmd_token, O_TTL | O_ISSUER | O_AUD, 0, 0,
      "token [--subject S] [--ttl SECONDS] [--issuer I] [--audience A]" },
    { "deploy", cmd_deploy, O_NAME | O_RUNTIME | O_HANDLER | O_MEMORY
      | O_TIMEOUT | O_ENV | O_PUBLIC | O_PRIVATE | O_CONC | O_KEEP, 1, 1,
      "deploy <dir|file> --name N --runtime python3|nodejs --handler F.FN\n"
      "         [--memory MB] [--timeout MS] [--env K=V ...] [--public|"
      "--private]\n         [--max-concurrency N] [--keep-alive S]" },
    { "invoke", cmd_invoke, O_DATA | O_METHOD | O_PATH | O_HEADER | O_KEY, 1,
      1, "invoke <name> [--data TEXT|@FILE|@-] [-X METHOD] [--path /P]\n"
      "         [-H 'Name: value' ...] [--key ACCESS-KEY]" },
    { "ls", cmd_ls, 0, 0, 0, "ls" },
    { "info", cmd_info, 0, 1, 1, "info <name>" },
    { "logs", cmd_logs, O_LIMIT | O_FOLLOW, 1, 2,
      "logs <name> [request-id] [--limit N] [--follow]" },
    { "executions", cmd_executions, O_LIMIT | O_BEFORE, 1, 1,
      "executions <name> [--limit N] [--before CURSOR]" },
    { "keys", cmd_keys, 0, 2, 3,
      "keys create|ls <name>  |  keys rotate|rm <name> <key-id>" },
    { "rm", cmd_rm, 0, 1, 1, "rm <name>" },
    { "top", cmd_top, O_ITER, 0, 0, "top [--iterations N]" },
    { NULL, NULL, 0, 0, 0, NULL }
};


static void
usage(FILE *out)
{
    const fctl_cmd_t *c;

    fprintf(out,
        "usage: faasctl [options] <command> [arguments]\n"
        "\n"
        "commands:\n");
    for (c = commands; c->name; c++) {
        fprintf(out, "  %s\n", c->usage);
    }
    fprintf(out,
        "\n"
        "options (environment variable in brackets):\n"
        "  --url URL           the platform's nginx [FAAS_URL] (default "
        "https://localhost)\n"
        "  --unix-socket PATH  connect to this Unix socket instead "
        "[FAAS_UNIX_SOCKET]\n"
        "  --token JWT         bearer token [FAAS_TOKEN]\n"
        "  --secret-file FILE  HS256 secret: `token` mints from it, other "
        "commands\n"
        "                      mint a short-lived token when no --token is "
        "given\n"
        "                      [FAAS_JWT_SECRET_FILE]\n"
        "  --subject NAME      subject (user) of minted tokens "
        "[FAAS_SUBJECT] (default dev)\n"
        "  --cacert FILE       trust this CA / self-signed certificate "
        "[FAAS_CACERT]\n"
        "  -k, --insecure      do not verify the server's certificate\n"
        "  --request-timeout S whole-request timeout in seconds (default 60)\n"
        "  --user NAME         TESTING ONLY: send X-Faas-User: NAME instead "
        "of a token\n"
        "                      (what nginx sends the registry after the JWT "
        "check; only\n"
        "                      useful with --unix-socket on the registry's "
        "socket)\n"
        "  --json              print the API's JSON answers\n"
        "  -v, --verbose       print each request and its status on stderr\n"
        "  -h, --help          this text\n"
        "\n"
        "deploy creates the function, or uploads a new version of an "
        "existing one and\n"
        "changes the settings given (--env replaces the whole "
        "environment).\n"
        "\n"
        "logs --follow prints the output of new calls as they are recorded "
        "(polling\n"
        "every second) until interrupted; top shows per function the last "
        "minute's\n"
        "rate, p50/p99 total time, cold-start share and errors, refreshed "
        "every\n"
        "second (--iterations N: N times, then exit).\n"
        "\n"
        "exit codes: 0 ok, 1 the server answered an error, 2 usage or local "
        "input error,\n"
        "            3 the server could not be reached, 4 not found (404)\n");
}


static int
parse_long(const char *opt, const char *s, long min, long max, long *out)
{
    char *end;
    long  v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        return fail(FCTL_EXIT_USAGE, "%s: \"%s\" is not a number from %ld to "
                    "%ld", opt, s, min, max);
    }
    *out = v;
    return 0;
}


static const struct option long_opts[] = {
    { "url", required_argument, NULL, OPT_URL },
    { "unix-socket", required_argument, NULL, OPT_SOCKET },
    { "token", required_argument, NULL, OPT_TOKEN },
    { "secret-file", required_argument, NULL, OPT_SECRET },
    { "subject", required_argument, NULL, OPT_SUBJECT },
    { "user", required_argument, NULL, OPT_USER },
    { "cacert", required_argument, NULL, OPT_CACERT },
    { "insecure", no_argument, NULL, 'k' },
    { "request-timeout", required_argument, NULL, OPT_REQ_TIMEOUT },
    { "json", no_argument, NULL, OPT_JSON },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { "name", required_argument, NULL, OPT_NAME },
    { "runtime", required_argument, NULL, OPT_RUNTIME },
    { "handler", required_argument, NULL, OPT_HANDLER },
    { "memory", required_argument, NULL, OPT_MEMORY },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "env", required_argument, NULL, OPT_ENV },
    { "public", no_argument, NULL, OPT_PUBLIC },
    { "private", no_argument, NULL, OPT_PRIVATE },
    { "max-concurrency", required_argument, NULL, OPT_CONC },
    { "keep-alive", required_argument, NULL, OPT_KEEP },
    { "data", required_argument, NULL, OPT_DATA },
    { "method", required_argument, NULL, OPT_METHOD },
    { "path", required_argument, NULL, OPT_PATH },
    { "header", required_argument, NULL, OPT_HEADER },
    { "key", required_argument, NULL, OPT_KEY },
    { "ttl", required_argument, NULL, OPT_TTL },
    { "issuer", required_argument, NULL, OPT_ISSUER },
    { "audience", required_argument, NULL, OPT_AUD },
    { "limit", required_argument, NULL, OPT_LIMIT },
    { "before", required_argument, NULL, OPT_BEFORE },
    { "follow", no_argument, NULL, OPT_FOLLOW },
    { "iterations", required_argument, NULL, OPT_ITER },
    { NULL, 0, NULL, 0 }
};


/* "--name" for OPT_NAME, for messages. */
static const char *
opt_name(int c)
{
    static char        buf[64];
    const struct option *o;

    for (o = long_opts; o->name; o++) {
        if (o->val == c) {
            snprintf(buf, sizeof(buf), "--%s", o->name);
            return buf;
        }
    }
    snprintf(buf, sizeof(buf), "-%c", c);
    return buf;
}


/* Parses one option into f; returns 0 or an exit code. */
static int
take_option(fctl_t *f, int c, const char *arg, const char *opt)
{
    switch (c) {
    case OPT_URL: f->conn.url = arg; break;
    case OPT_SOCKET: f->conn.unix_socket = arg; break;
    case OPT_TOKEN: f->conn.token = arg[0] ? arg : NULL; break;
    case OPT_SECRET: f->secret_file = arg[0] ? arg : NULL; break;
    case OPT_SUBJECT: f->subject = arg; break;
    case OPT_USER: f->conn.user = arg; break;
    case OPT_CACERT: f->conn.cacert = arg; break;
    case 'k': f->conn.insecure = 1; break;
    case OPT_REQ_TIMEOUT:
        return parse_long(opt, arg, 1, 86400, &f->conn.timeout_s);
    case OPT_JSON: f->json = 1; break;
    case 'v': f->conn.verbose = 1; break;
    case OPT_NAME: f->given |= O_NAME; f->name = arg; break;
    case OPT_RUNTIME: f->given |= O_RUNTIME; f->runtime = arg; break;
    case OPT_HANDLER: f->given |= O_HANDLER; f->handler = arg; break;
    case OPT_MEMORY:
        f->given |= O_MEMORY;
        return parse_long(opt, arg, 1, 1 << 20, &f->memory);
    case OPT_TIMEOUT:
        f->given |= O_TIMEOUT;
        return parse_long(opt, arg, 1, 86400000, &f->timeout);
    case OPT_CONC:
        f->given |= O_CONC;
        return parse_long(opt, arg, 1, 1000000, &f->conc);
    case OPT_KEEP:
        f->given |= O_KEEP;
        return parse_long(opt, arg, 1, 86400 * 365, &f->keep);
    case OPT_TTL:
        f->given |= O_TTL;
        return parse_long(opt, arg, 1, 86400 * 366, &f->ttl);
    case OPT_LIMIT:
        f->given |= O_LIMIT;
        return parse_long(opt, arg, 1, 1000, &f->limit);
    case OPT_ENV:
        f->given |= O_ENV;
        if (strchr(arg, '=') == NULL || arg[0] == '=') {
            return fail(FCTL_EXIT_USAGE, "--env: \"%s\" is not K=V", arg);
        }
        if (f->nenv == MAX_ENV) {
            return fail(FCTL_EXIT_USAGE, "--env: more than %d", MAX_ENV);
        }
        f->env[f->nenv++] = arg;
        break;
    case OPT_PUBLIC:
    case OPT_PRIVATE:
        if (f->public >= 0 && f->public != (c == OPT_PUBLIC)) {
            return fail(FCTL_EXIT_USAGE, "--public and --private together");
        }
        f->given |= c == OPT_PUBLIC ? O_PUBLIC : O_PRIVATE;
        f->public = c == OPT_PUBLIC;
        break;
    case OPT_DATA: f->given |= O_DATA; f->data = arg; break;
    case OPT_METHOD: f->given |= O_METHOD; f->method = arg; break;
    case OPT_PATH: f->given |= O_PATH; f->path = arg; break;
    case OPT_HEADER:
        f->given |= O_HEADER;
        if (strchr(arg, ':') == NULL || arg[0] == ':') {
            return fail(FCTL_EXIT_USAGE, "--header: \"%s\" is not "
                        "'Name: value'", arg);
        }
        if (f->nheaders == MAX_HEADERS) {
            return fail(FCTL_EXIT_USAGE, "--header: more than %d",
                        MAX_HEADERS);
        }
        f->headers[f->nheaders++] = arg;
        break;
    case OPT_KEY: f->given |= O_KEY; f->key = arg; break;
    case OPT_ISSUER: f->given |= O_ISSUER; f->issuer = arg; break;
    case OPT_AUD: f->given |= O_AUD; f->audience = arg; break;
    case OPT_BEFORE: f->given |= O_BEFORE; f->before = arg; break;
    case OPT_FOLLOW: f->given |= O_FOLLOW; f->follow = 1; break;
    case OPT_ITER:
        f->given |= O_ITER;
        return parse_long(opt, arg, 1, 1000000, &f->iterations);
    default:
        return FCTL_EXIT_USAGE;
    }
    return 0;
}


static const char *
env_or(const char *name, const char *def)
{
    const char *v = getenv(name);

    return v && v[0] ? v : def;
}


/* What the option parsers return to go on; anything else is an exit code. */
#define GO_ON (-1)


/* The defaults, then what the environment says. */
static void
defaults(fctl_t *f)
{
    memset(f, 0, sizeof(*f));
    f->public = -1;
    f->ttl = 3600;
    f->limit = 20;
    f->conn.timeout_s = 60;
    f->conn.url = getenv("FAAS_URL");
    f->conn.unix_socket = env_or("FAAS_UNIX_SOCKET", NULL);
    f->conn.token = env_or("FAAS_TOKEN", NULL);
    f->conn.cacert = env_or("FAAS_CACERT", NULL);
    f->secret_file = env_or("FAAS_JWT_SECRET_FILE", NULL);
    f->subject = env_or("FAAS_SUBJECT", "dev");
    f->key = env_or("FAAS_KEY", NULL);
}


/* The options before the command ("+" stops at it): they are global. */
static int
global_options(fctl_t *f, int argc, char **argv)
{
    int c, rc;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "+kvhX:H:", long_opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == '?' || c == ':') {
            fprintf(stderr, "%s: unknown or incomplete option \"%s\" (see "
                    "--help)\n", prog, argv[optind - 1]);
            return FCTL_EXIT_USAGE;
        }
        if (c == 'X' || c == 'H') {
            fprintf(stderr, "%s: -%c belongs after the invoke command\n",
                    prog, c);
            return FCTL_EXIT_USAGE;
        }
        rc = take_option(f, c, optarg, opt_name(c));
        if (rc) {
            return rc;
        }
    }
    return GO_ON;
}


static const fctl_cmd_t *
find_command(const char *name)
{
    const fctl_cmd_t *cmd;

    for (cmd = commands; cmd->name; cmd++) {
        if (strcmp(cmd->name, name) == 0) {
            return cmd;
        }
    }
    return NULL;
}


/*
 * The command's own arguments and options, in any order (argv[0] is the
 * command); *nargs is how many arguments, left at the end of argv.
 */
static int
command_options(fctl_t *f, const fctl_cmd_t *cmd, int argc, char **argv,
                int *nargs)
{
    int c, rc;

    optind = 0;   /* glibc: 0 re-initialises getopt */
    while ((c = getopt_long(argc, argv, "kvhX:H:", long_opts, NULL)) != -1) {
        if (c == 'h') {
            printf("usage: faasctl %s\n", cmd->usage);
            return 0;
        }
        if (c == '?' || c == ':') {
            return fail(FCTL_EXIT_USAGE, "unknown or incomplete option "
                        "\"%s\"; usage: %s", argv[optind - 1], cmd->usage);
        }
        if (c == 'X') {
            c = OPT_METHOD;
        } else if (c == 'H') {
            c = OPT_HEADER;
        }
        rc = take_option(f, c, optarg, opt_name(c));
        if (rc) {
            return rc;
        }
        if (f->given & ~cmd->opts) {
            return fail(FCTL_EXIT_USAGE, "option %s does not apply; "
                        "usage: faasctl %s", opt_name(c), cmd->usage);
        }
    }
    if (f->given & ~cmd->opts) {
        return fail(FCTL_EXIT_USAGE, "an option given before \"%s\" does "
                    "not apply to it; usage: %s", cmd->name, cmd->usage);
    }
    *nargs = argc - optind;
    if (*nargs < cmd->min_args || *nargs > cmd->max_args) {
        return fail(FCTL_EXIT_USAGE, "usage: faasctl %s", cmd->usage);
    }
    return GO_ON;
}


/* The server's scheme://host[:port] in f->conn.url, a copy in *url (the
 * caller frees it): paths are added per request. */
static int
server_url(fctl_t *f, char **url)
{
    char *slash;

    if (f->conn.url == NULL || f->conn.url[0] == '\0') {
        f->conn.url = f->conn.unix_socket ? "http://localhost"
                                          : "https://localhost";
    }
    *url = strdup(f->conn.url);
    if (*url == NULL) {
        return fail(FCTL_EXIT_USAGE, "out of memory");
    }
    slash = strstr(*url, "://");
    if (slash == NULL) {
        return fail(FCTL_EXIT_USAGE, "--url \"%s\" has no scheme (http:// or "
                    "https://)", f->conn.url);
    }
    slash = strchr(slash + 3, '/');
    if (slash) {
        *slash = '\0';
    }
    f->conn.url = *url;
    return GO_ON;
}


/* A short-lived token from the JWT secret, when no credential is given
 * (the token command makes its own). */
static int
mint_token(fctl_t *f, const fctl_cmd_t *cmd)
{
    faas_error_t err;

    if (strcmp(cmd->name, "token") == 0 || f->conn.token != NULL
        || f->conn.user != NULL || f->secret_file == NULL) {
        return GO_ON;
    }
    faas_error_clear(&err);
    f->minted = fctl_token_mint(f->secret_file, f->subject, 300, f->issuer,
                                f->audience, &err);
    if (f->minted == NULL) {
        return fail(FCTL_EXIT_USAGE, "%s", err.msg);
    }
    f->conn.token = f->minted;
    return GO_ON;
}


int
main(int argc, char **argv)
{
    fctl_t             f;
    const fctl_cmd_t  *cmd;
    int                rc, nargs = 0;
    cleanup_free char *url = NULL;

    defaults(&f);
    rc = global_options(&f, argc, argv);
    if (rc != GO_ON) {
        return rc;
    }
    if (optind >= argc) {
        usage(stderr);
        return FCTL_EXIT_USAGE;
    }
    cmd = find_command(argv[optind]);
    if (cmd == NULL) {
        fprintf(stderr, "%s: unknown command \"%s\" (see --help)\n", prog,
                argv[optind]);
        return FCTL_EXIT_USAGE;
    }
    cmd_name = cmd->name;

    argc -= optind;
    argv += optind;
    rc = command_options(&f, cmd, argc, argv, &nargs);
    if (rc == GO_ON) {
        rc = server_url(&f, &url);
    }
    if (rc == GO_ON) {
        rc = mint_token(&f, cmd);
    }
    if (rc != GO_ON) {
        return rc;
    }

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmd->run(&f, nargs, argv + optind);
    curl_global_cleanup();
    free(f.minted);
    return rc;
}

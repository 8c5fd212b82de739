/*
 * The HTTP side of the registry: libmicrohttpd on a Unix socket (nginx
 * proxies /v1/ to it after the JWT check set X-Faas-User), body collection
 * with a size cap, routing to the api_*.c handlers, JSON answers. The
 * helpers the handlers use to answer are in http_reply.c, a layer below.
 */
#include "registry.h"
#include "ids.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <microhttpd.h>

#include "cleanup.h"
#include "config.h"
#include "log.h"
#include "unpriv.h"

typedef struct conn_ctx_s {
    char   *body;
    size_t  len;
    size_t  cap;
    int     too_large;
} conn_ctx_t;

static struct MHD_Daemon *daemon_;
static faas_registry_t   *reg_;
static size_t             body_max_;


/* Routes /v1/functions[/<name>[/<sub>[/<rest>]]]. */
static int
route(faas_http_req_t *req, faas_http_resp_t *resp)
{
    const char *p = req->path, *slash;
    char        name[128], sub[32];
    size_t      n;

    if (strncmp(p, "/v1/functions", 13) != 0
        || (p[13] != '\0' && p[13] != '/')) {
        return faas_http_error(resp, 404, "not_found", "no such endpoint");
    }
    p += 13;
    if (*p == '\0' || strcmp(p, "/") == 0) {
        return faas_api_functions(reg_, req, NULL, NULL, resp);
    }
    p++;
    slash = strchr(p, '/');
    n = slash ? (size_t) (slash - p) : strlen(p);
    if (n == 0 || n >= sizeof(name)) {
        return faas_http_error(resp, 404, "not_found", "no such function");
    }
    memcpy(name, p, n);
    name[n] = '\0';
    if (slash == NULL || slash[1] == '\0') {
        return faas_api_functions(reg_, req, name, "", resp);
    }
    p = slash + 1;
    slash = strchr(p, '/');
    n = slash ? (size_t) (slash - p) : strlen(p);
    if (n >= sizeof(sub)) {
        return faas_http_error(resp, 404, "not_found", "no such endpoint");
    }
    memcpy(sub, p, n);
    sub[n] = '\0';
    p = slash ? slash + 1 : "";
    if (strcmp(sub, "keys") == 0) {
        return faas_api_keys(reg_, req, name, p, resp);
    }
    if (strcmp(sub, "executions") == 0) {
        return faas_api_executions(reg_, req, name, p, resp);
    }
    if (*p != '\0') {
        return faas_http_error(resp, 404, "not_found", "no such endpoint");
    }
    return faas_api_functions(reg_, req, name, sub, resp);
}


static enum MHD_Result
send_resp(struct MHD_Connection *conn, faas_http_resp_t *resp)
{
    struct MHD_Response *r;
    enum MHD_Result      ret;
    char                *body;
    size_t               len;

    if (resp->raw != NULL) {
        body = resp->raw;
        len = resp->raw_len;
        resp->raw = NULL;
    } else {
        if (resp->json == NULL) {
            resp->json = json_object();
        }
        body = json_dumps(resp->json, JSON_COMPACT);
        len = body ? strlen(body) : 0;
        if (body != NULL) {
            /* A trailing newline is friendlier to curl users. */
            char *nb = realloc(body, len + 2);
            if (nb != NULL) {
                body = nb;
                body[len++] = '\n';
                body[len] = '\0';
            }
        }
        resp->ctype = "application/json";
    }
    r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type",
                            resp->ctype ? resp->ctype : "application/json");
    ret = MHD_queue_response(conn, (unsigned) resp->status, r);
    MHD_destroy_response(r);
    return ret;
}


static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
           const char *method, const char *version, const char *upload_data,
           size_t *upload_data_size, void **con_cls)
{
    conn_ctx_t      *ctx = *con_cls;
    faas_http_req_t  req;
    faas_http_resp_t resp;
    const char      *cl, *admin;
    enum MHD_Result  ret;
    char            *nb;

    (void) cls;
    (void) version;
    if (ctx == NULL) {
        ctx = calloc(1, sizeof(*ctx));
        if (ctx == NULL) {
            return MHD_NO;
        }
        cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                         "Content-Length");
        *con_cls = ctx;
        if (cl != NULL && strtoull(cl, NULL, 10) > body_max_) {
            /* Answer before reading a byte of it; MHD then closes. */
            memset(&resp, 0, sizeof(resp));
            faas_http_error(&resp, 413, "too_large", "request body is larger"
                            " than %zu bytes", body_max_);
            ret = send_resp(conn, &resp);
            json_decref(resp.json);
            return ret;
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!ctx->too_large && ctx->len + *upload_data_size > body_max_) {
            ctx->too_large = 1;
        }
        if (!ctx->too_large) {
            if (ctx->len + *upload_data_size + 1 > ctx->cap) {
                ctx->cap = (ctx->len + *upload_data_size + 1) * 2;
                if (ctx->cap > body_max_ + 1) {
                    ctx->cap = body_max_ + 1;
                }
                nb = realloc(ctx->body, ctx->cap);
                if (nb == NULL) {
                    return MHD_NO;
                }
                ctx->body = nb;
            }
            memcpy(ctx->body + ctx->len, upload_data, *upload_data_size);
            ctx->len += *upload_data_size;
            ctx->body[ctx->len] = '\0';
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    memset(&resp, 0, sizeof(resp));
    memset(&req, 0, sizeof(req));
    req.method = method;
    req.path = url;
    req.conn = conn;
    req.body = ctx->body;
    req.len = ctx->len;
    req.user = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                           "X-Faas-User");
    admin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                        "X-Faas-Admin");
    req.admin = admin != NULL && strcmp(admin, "1") == 0;
    if (ctx->too_large) {
        faas_http_error(&resp, 413, "too_large",
                        "request body is larger than %zu bytes", body_max_);
    } else if (req.user == NULL || req.user[0] == '\0') {
        faas_http_error(&resp, 401, "unauthenticated",
                        "no authenticated user (X-Faas-User)");
    } else if (!faas_subject_valid(req.user, strlen(req.user))) {
        /* The gateway's rule (DESIGN.md section 3): owners are compared
         * exactly, so no space, control character or case trick. */
        req.user = NULL;
        faas_http_error(&resp, 400, "invalid", "malformed subject"
                        " (X-Faas-User must match [A-Za-z0-9._@:-]{1,128})");
    } else {
        route(&req, &resp);
    }
    faas_debug(NULL, "%s %s %s -> %d", req.user ? req.user : "-", method,
               url, resp.status);
    ret = send_resp(conn, &resp);
    if (resp.json != NULL) {
        json_decref(resp.json);
    }
    free(resp.raw);
    return ret;
}


static void
on_done(void *cls, struct MHD_Connection *conn, void **con_cls,
        enum MHD_RequestTerminationCode toe)
{
    conn_ctx_t *ctx = *con_cls;

    (void) cls;
    (void) conn;
    (void) toe;
    if (ctx != NULL) {
        free(ctx->body);
        free(ctx);
        *con_cls = NULL;
    }
}


int
faas_http_start(faas_registry_t *reg, faas_error_t *err)
{
    struct sockaddr_un sa;
    const char        *path;
    char               tmp[sizeof(sa.sun_path)];
    int                fd;

    reg_ = reg;
    /* A JSON create carries base64 code: 4/3 of the zip cap plus fields. */
    body_max_ = reg->max_upload_bytes / 3 * 4 + 4 + 65536;
    if (faas_config_require_string(reg->cfg, "socket", &path, err) < 0) {
        return -1;
    }
    if (strlen(path) >= sizeof(sa.sun_path)) {
        return faas_error_set(err, 0, "socket path too long: %s", path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return faas_error_set(err, errno, "socket");
    }
    /* Bound under a temporary name and renamed once MHD serves it, so the
     * path never exists without a listener behind it. */
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int) sizeof(tmp)) {
        close(fd);
        return faas_error_set(err, 0, "socket path too long: %s", path);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, tmp);
    unlink(tmp);
    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0
        || chmod(tmp, 0660) < 0 || listen(fd, 128) < 0) {
        close(fd);
        return faas_error_set(err, errno, "listen on %s", tmp);
    }
    /* nginx's workers reach the socket through this group */
    if (faas_unpriv_socket_group(tmp, faas_config_string(reg->cfg,
                                                         "socket_group",
                                                         NULL),
                                 err) < 0) {
        close(fd);
        unlink(tmp);
        return faas_error_wrap(err, "socket_group");
    }
    daemon_ = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION
            | MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_request, NULL,
        MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) 60,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned) 256,
        MHD_OPTION_END);
    if (daemon_ == NULL) {
        close(fd);
        unlink(tmp);
        return faas_error_set(err, 0, "MHD_start_daemon failed");
    }
    if (rename(tmp, path) < 0) {
        return faas_error_set(err, errno, "rename %s", tmp);
    }
    faas_info(NULL, "listening on %s", path);
    return 0;
}


void
faas_http_stop(void)
{
    if (daemon_ != NULL) {
        MHD_stop_daemon(daemon_);
        daemon_ = NULL;
    }
}

/*
 * One HTTP(S) request with libcurl: to the platform's nginx over TCP, or to
 * a Unix socket (nginx's or, for tests, the registry's own).
 */
#include "faasctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include <errno.h>

#include "cleanup.h"


typedef struct {
    char   *data;
    size_t  len;
    size_t  cap;
} buf_t;


static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    buf_t  *b = userdata;
    size_t  n = size * nmemb;
    char   *p;

    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;

        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        p = realloc(b->data, cap);
        if (p == NULL) {
            return 0;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}


/* Copies the value of "Name: value\r\n" when the name matches. */
static void
take_header(const char *line, size_t n, const char *name, char **dst)
{
    size_t      nl = strlen(name);
    const char *v, *end;

    if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':') {
        return;
    }
    v = line + nl + 1;
    end = line + n;
    while (v < end && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (end > v && isspace((unsigned char) end[-1])) {
        end--;
    }
    free(*dst);
    *dst = strndup(v, (size_t) (end - v));
}


static size_t
on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    fctl_resp_t *r = userdata;
    size_t       n = size * nmemb;

    take_header(ptr, n, "Content-Type", &r->content_type);
    take_header(ptr, n, "X-Faas-Request-Id", &r->request_id);
    take_header(ptr, n, "X-Faas-Start", &r->start);
    take_header(ptr, n, "WWW-Authenticate", &r->www_auth);
    return n;
}


/*
 * See faasctl.h. With a Unix socket the URL's host part is only sent as the
 * Host header.
 */
int
fctl_http(const fctl_conn_t *c, const char *method, const char *path,
          const char *ctype, const void *body, size_t len,
          const char *const *headers, fctl_resp_t *resp, faas_error_t *err)
{
    CURL               *h;
    CURLcode            rc;
    struct curl_slist  *hl = NULL;
    char                errbuf[CURL_ERROR_SIZE] = "";
    cleanup_free char  *url = NULL;
    cleanup_free char  *auth = NULL;
    cleanup_free char  *ct = NULL;
    cleanup_free char  *xuser = NULL;
    buf_t               b = { NULL, 0, 0 };
    int                 ret = -1;

    memset(resp, 0, sizeof(*resp));
    if (asprintf(&url, "%s%s", c->url, path) < 0) {
        return faas_error_set(err, ENOMEM, "url");
    }
    h = curl_easy_init();
    if (h == NULL) {
        return faas_error_set(err, 0, "curl_easy_init failed");
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout_s);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "faasctl/1");
    if (c->unix_socket) {
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->unix_socket);
    }
    if (c->cacert) {
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
    }
    if (c->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (c->token) {
        if (asprintf(&auth, "Authorization: Bearer %s", c->token) < 0) {
            goto nomem;
        }
        hl = curl_slist_append(hl, auth);
    }
    if (c->user) {
        if (asprintf(&xuser, "X-Faas-User: %s", c->user) < 0) {
            goto nomem;
        }
        hl = curl_slist_append(hl, xuser);
    }
    if (body != NULL || strcmp(method, "POST") == 0
        || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t) (body ? len : 0));
        if (asprintf(&ct, "Content-Type: %s",
                     ctype ? ctype : "application/octet-stream") < 0) {
            goto nomem;
        }
        hl = curl_slist_append(hl, ct);
        /* no "Expect: 100-continue" round trip for uploads */
        hl = curl_slist_append(hl, "Expect:");
    }
    for (; headers && *headers; headers++) {
        hl = curl_slist_append(hl, *headers);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);

    if (c->verbose) {
        fprintf(stderr, "> %s %s%s%s\n", method, url,
                c->unix_socket ? " via " : "",
                c->unix_socket ? c->unix_socket : "");
    }
    rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        faas_error_set(err, 0, "%s %s: %s", method, url,
                       errbuf[0] ? errbuf : curl_easy_strerror(rc));
        fctl_resp_free(resp);
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    if (b.data == NULL) {
        b.data = strdup("");
        if (b.data == NULL) {
            goto nomem;
        }
    }
    resp->body = b.data;
    resp->len = b.len;
    b.data = NULL;
    if (c->verbose) {
        fprintf(stderr, "< %ld%s%s%s%s\n", resp->status,
                resp->request_id ? " request-id " : "",
                resp->request_id ? resp->request_id : "",
                resp->start ? " start " : "", resp->start ? resp->start : "");
    }
    ret = 0;
    goto out;

nomem:
    faas_error_set(err, ENOMEM, "request");
out:
    free(b.data);
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    return ret;
}


/* Frees what fctl_http() put in resp and zeroes it. */
void
fctl_resp_free(fctl_resp_t *resp)
{
    free(resp->body);
    free(resp->content_type);
    free(resp->request_id);
    free(resp->start);
    free(resp->www_auth);
    memset(resp, 0, sizeof(*resp));
}

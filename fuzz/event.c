/*
 * The gateway's event builder (invoker/event.c) fed an arbitrary request:
 * lines method, path, query, then "name: value" header lines up to an empty
 * line, then the body. The event must be one JSON value the agent accepts
 * and jansson parses (the runtimes receive it as it is).
 */
#include "fuzz.h"

#include <jansson.h>

#include "agent.h"
#include "event.h"

#define MAX_HEADERS 64

static size_t
read_headers(fuzz_in_t *in, faas_event_header_t *h)
{
    const uint8_t *line, *colon;
    size_t         len, n = 0;

    while (n < MAX_HEADERS && in->p < in->end) {
        line = fuzz_field(in, '\n', &len);
        if (len == 0) {
            break;
        }
        colon = memchr(line, ':', len);
        h[n].name = (const char *) line;
        h[n].name_len = colon ? (size_t) (colon - line) : len;
        h[n].value = colon ? (const char *) colon + 1 : "";
        h[n].value_len = colon ? len - h[n].name_len - 1 : 0;
        n++;
    }
    return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t           in = { data, data + size };
    faas_event_header_t headers[MAX_HEADERS];
    faas_event_req_t    req;
    faas_error_t        err;
    json_error_t        jerr;
    json_t             *j;
    char               *ev, why[256];
    size_t              len;

    memset(&req, 0, sizeof(req));
    req.method = (const char *) fuzz_field(&in, '\n', &req.method_len);
    req.path = (const char *) fuzz_field(&in, '\n', &req.path_len);
    req.query = (const char *) fuzz_field(&in, '\n', &req.query_len);
    req.headers = headers;
    req.nheaders = read_headers(&in, headers);
    req.body = in.p;
    req.body_len = (size_t) (in.end - in.p);
    req.source_ip = "192.0.2.1";
    req.protocol = "HTTP/1.1";
    req.request_id = "0123456789abcdef0123456789abcdef";
    req.function = "fuzz";
    req.time_ms = (unsigned long long) size * 1000003ULL;

    ev = faas_event_build(&req, &len, &err);
    if (ev == NULL) {
        return 0;
    }
    if (strlen(ev) != len
        || faas_json_check(ev, len, why, sizeof(why)) < 0) {
        abort();
    }
    j = json_loadb(ev, len, JSON_ALLOW_NUL, &jerr);
    if (!json_is_object(j)) {
        abort();
    }
    json_decref(j);
    free(ev);
    return 0;
}

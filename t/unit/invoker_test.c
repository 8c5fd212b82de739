/*
 * libfaasinvoker: partitions, key names, entries, event, protobuf records,
 * answer checks, shared-host cookies.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "answer.h"
#include "cookie.h"
#include "entry.h"
#include "frame.h"
#include "ids.h"
#include "event.h"
#include "partition.h"
#include "record.h"
#include "reqid.h"
#include "trace.h"
#include "tap.h"


static void
test_partition(void)
{
    unsigned p1, p2, q1, q2;
    char     buf[64];

    is_int(faas_crc16("123456789", 9), 0x31C3, "crc16 check value");
    is_int(faas_crc16("", 0), 0, "crc16 of nothing");
    /* Redis CLUSTER KEYSLOT values (documented examples). */
    is_int(faas_crc16("foo", 3) % 16384, 12182, "keyslot foo");
    is_int(faas_crc16("bar", 3) % 16384, 5061, "keyslot bar");

    faas_partition_pair("hello@1", 7, &p1, &p2);
    is_int(p1, faas_crc16("hello@1", 7) % 16384, "p1 is crc16(rid)");
    snprintf(buf, sizeof(buf), "hello@1:secondary");
    is_int(p2, faas_crc16(buf, strlen(buf)) % 16384,
           "p2 is crc16(rid:secondary)");
    ok(p1 < 16384 && p2 < 16384, "partitions in range");
    faas_partition_pair("hello@2", 7, &q1, &q2);
    ok(q1 != p1 || q2 != p2, "another version, other partitions");

    is_int(faas_partition_shard(0, 64), 0, "partition 0 -> shard 0");
    is_int(faas_partition_shard(255, 64), 0, "partition 255 -> shard 0");
    is_int(faas_partition_shard(256, 64), 1, "partition 256 -> shard 1");
    is_int(faas_partition_shard(16383, 64), 63, "last partition -> last");
    is_int(faas_partition_shard(16383, 1), 0, "one shard");
    is_int(faas_partition_shard(8192, 3), 1, "three shards, middle");
    is_int(faas_partition_shard(100, 0), 0, "zero shards does not divide");

    is_int(faas_shard_choose(5, 3), 1, "second queue shorter");
    is_int(faas_shard_choose(2, 3), 0, "first queue shorter");
    is_int(faas_shard_choose(4, 4), 0, "tie goes to the first");
}


static void
test_reqid(void)
{
    char a[33], b[33];

    is_int(faas_request_id_new(a, NULL), 0, "request id made");
    is_int(faas_request_id_new(b, NULL), 0, "another one");
    ok(faas_request_id_valid(a, strlen(a)), "32 lowercase hex");
    ok(strcmp(a, b) != 0, "two ids differ");
    for (int i = 0; i < 200; i++) {
        faas_request_id_new(b, NULL);
    }
    ok(faas_request_id_valid(b, strlen(b)), "still valid after a refill");
}


static void
test_event(void)
{
    faas_event_header_t hdrs[] = {
        {"Host", 4, "gw.local", 8},
        {"X-Multi", 7, "one", 3},
        {"x-multi", 7, "two", 3},
        {"User-Agent", 10, "curl/8", 6},
        {"Cookie", 6, "a=1; b=2", 8},
    };
    faas_event_req_t req = {
        .method = "POST", .method_len = 4,
        .path = "/items/7", .path_len = 8,
        .query = "a=1&b=x%20y&a=2&c&d=e+f", .query_len = 23,
        .headers = hdrs, .nheaders = 5,
        .source_ip = "127.0.0.1", .protocol = "HTTP/1.1",
        .request_id = "0123456789abcdef0123456789abcdef",
        .function = "hello",
        .body = (const unsigned char *) "{\"x\":1}", .body_len = 7,
        .time_ms = 1700000000123ULL,
    };
    faas_error_t err;
    char        *s;
    size_t       len;
    json_t      *j, *rc;
    json_error_t jerr;
    static const unsigned char bin[] = {0xff, 0x00, 0x41};

    s = faas_event_build(&req, &len, &err);
    ok(s != NULL, "event built");
    is_int(len, strlen(s), "event length");
    j = json_loads(s, 0, &jerr);
    ok(j != NULL, "event is JSON");
    is_str(json_string_value(json_object_get(j, "version")), "2.0", "version");
    is_str(json_string_value(json_object_get(j, "rawPath")), "/items/7",
           "rawPath");
    is_str(json_string_value(json_object_get(j, "rawQueryString")),
           "a=1&b=x%20y&a=2&c&d=e+f", "rawQueryString");
    is_str(json_string_value(json_object_get(
               json_object_get(j, "queryStringParameters"), "a")),
           "1,2", "repeated query values joined");
    is_str(json_string_value(json_object_get(
               json_object_get(j, "queryStringParameters"), "b")),
           "x y", "query value decoded");
    is_str(json_string_value(json_object_get(
               json_object_get(j, "queryStringParameters"), "c")),
           "", "query key without value");
    is_str(json_string_value(json_object_get(
               json_object_get(j, "queryStringParameters"), "d")),
           "e f", "plus decoded");
    is_int(json_array_size(json_object_get(
               json_object_get(j, "multiValueQueryStringParameters"), "a")),
           2, "v1 multi-value query");
    is_str(json_string_value(json_object_get(json_object_get(j, "headers"),
                                             "x-multi")),
           "one,two", "repeated headers joined, names lowercased");
    is_int(json_array_size(json_object_get(
               json_object_get(j, "multiValueHeaders"), "x-multi")),
           2, "v1 multiValueHeaders");
    is_int(json_array_size(json_object_get(j, "cookies")), 2, "cookies");
    is_str(json_string_value(json_object_get(j, "body")), "{\"x\":1}",
           "text body");
    ok(json_is_false(json_object_get(j, "isBase64Encoded")), "not base64");
    is_str(json_string_value(json_object_get(j, "httpMethod")), "POST",
           "v1 httpMethod");
    is_str(json_string_value(json_object_get(j, "path")), "/items/7",
           "v1 path");
    rc = json_object_get(j, "requestContext");
    is_str(json_string_value(json_object_get(json_object_get(rc, "http"),
                                             "method")),
           "POST", "requestContext.http.method");
    is_str(json_string_value(json_object_get(json_object_get(rc, "http"),
                                             "sourceIp")),
           "127.0.0.1", "sourceIp");
    is_str(json_string_value(json_object_get(json_object_get(rc, "http"),
                                             "userAgent")),
           "curl/8", "userAgent");
    is_str(json_string_value(json_object_get(rc, "requestId")),
           req.request_id, "requestId");
    is_str(json_string_value(json_object_get(rc, "domainName")), "gw.local",
           "domainName");
    is_int(json_integer_value(json_object_get(rc, "timeEpoch")),
           1700000000123LL, "timeEpoch");
    is_str(json_string_value(json_object_get(rc, "time")),
           "14/Nov/2023:22:13:20 +0000", "time");
    json_decref(j);
    free(s);

    req.body = bin;
    req.body_len = sizeof(bin);
    req.query_len = 0;
    s = faas_event_build(&req, &len, &err);
    j = json_loads(s, 0, &jerr);
    is_str(json_string_value(json_object_get(j, "body")), "/wBB",
           "binary body base64");
    ok(json_is_true(json_object_get(j, "isBase64Encoded")), "isBase64Encoded");
    ok(json_is_null(json_object_get(j, "queryStringParameters")),
       "no query: null");
    json_decref(j);
    free(s);

    req.body_len = 0;
    hdrs[1].value = "\xc3\x28";
    hdrs[1].value_len = 2;
    s = faas_event_build(&req, &len, &err);
    ok(s != NULL, "invalid UTF-8 in a header does not fail the event");
    j = json_loads(s, 0, &jerr);
    ok(json_is_null(json_object_get(j, "body")), "empty body is null");
    json_decref(j);
    free(s);
}


/* An arena that counts what it gives and gets back. */
typedef struct {
    int allocs, frees;
} counting_t;


static void *
counting_alloc(void *data, size_t size)
{
    ((counting_t *) data)->allocs++;
    return malloc(size);
}


static void
counting_free(void *data, void *p)
{
    ((counting_t *) data)->frees++;
    free(p);
}


/* The event written into the caller's memory: the same bytes, one block
 * for a usual request, a block outgrown (a body of escapes) given back. */
static void
test_event_with(void)
{
    faas_event_header_t hdrs[] = {{"Host", 4, "gw.local", 8}};
    faas_event_req_t    req = {
        .method = "POST", .method_len = 4, .path = "/", .path_len = 1,
        .headers = hdrs, .nheaders = 1, .request_id = "r",
        .function = "hello",
        .body = (const unsigned char *) "{\"x\":1}", .body_len = 7,
        .time_ms = 1700000000123ULL,
    };
    counting_t          cnt = {0, 0};
    faas_event_alloc_t  al = {counting_alloc, counting_free, &cnt};
    faas_error_t        err;
    char               *a, *b, *quotes;
    size_t              alen, blen;

    a = faas_event_build(&req, &alen, &err);
    b = faas_event_build_with(&req, &al, &blen, &err);
    ok(a != NULL && b != NULL, "event built into the caller's memory");
    ok(alen == blen && memcmp(a, b, alen) == 0 && b[blen] == '\0',
       "the same bytes as faas_event_build");
    is_int(cnt.allocs, 1, "one block for a usual request");
    is_int(cnt.frees, 0, "nothing given back");
    free(a);
    free(b);

    quotes = malloc(100000);
    memset(quotes, '"', 100000);
    req.body = (const unsigned char *) quotes;
    req.body_len = 100000;
    cnt.allocs = cnt.frees = 0;
    a = faas_event_build(&req, &alen, &err);
    b = faas_event_build_with(&req, &al, &blen, &err);
    ok(a != NULL && b != NULL && alen == blen && memcmp(a, b, alen) == 0,
       "a body of escapes: the same bytes");
    ok(blen > 200000, "every quote escaped");
    is_int(cnt.allocs - cnt.frees, 1, "outgrown blocks given back");
    free(a);
    free(b);
    free(quotes);
}


static void
test_records(void)
{
    faas_prov_args_t        pa = {
        .rid = "hello@2",
        .origin_request_id = "0123456789abcdef0123456789abcdef",
        .enqueued_ms = 42,
    };
    faas_record_args_t      ra = {
        .request_id = "0123456789abcdef0123456789abcdef", .function = "hello",
        .version = 2, .user = "alice", .start_type = FAAS_START_STOLEN,
        .status = FAAS__INVOKE_STATUS__TIMEOUT, .http_status = 504,
        .duration_us = 10, .total_us = 20, .cold_start_us = 30,
        .memory_bytes = 40, .log_key = "logs/x", .agent_host = "h1",
        .timestamp_ms = 50, .sandbox_id = "s-0123456789abcdef",
    };
    faas_invoke_args_t      ia = {
        .token = "tok", .request_id = "r", .sandbox_id = "s-0123456789abcdef",
        .function = "hello", .version = 2,
        .event = (const uint8_t *) "{}", .event_len = 2,
        .deadline_ms = 99, .timeout_ms = 3000, .memory_mb = 128,
    };
    Faas__ProvisionRequest *p;
    Faas__ExecutionRecord  *r;
    Faas__AgentHello       *h;
    Faas__InvokeRequest    *iq;
    Faas__InvokeResponse    resp = FAAS__INVOKE_RESPONSE__INIT, *rp;
    faas_error_t            err;
    uint8_t                *buf, rbuf[64];
    size_t                  len, hl;

    is_int(faas_prov_request_pack(&pa, &buf, &len, &err), 0, "prov packed");
    p = faas__provision_request__unpack(NULL, len, buf);
    ok(p != NULL, "prov unpacks");
    is_str(p->rid, "hello@2", "prov rid");
    is_str(p->origin_request_id, pa.origin_request_id, "prov origin");
    is_int(p->enqueued_ms, 42, "prov enqueued");
    faas__provision_request__free_unpacked(p, NULL);
    free(buf);

    pa.origin_request_id = NULL;
    is_int(faas_prov_request_pack(&pa, &buf, &len, &err), 0,
           "prov without an origin packed");
    p = faas__provision_request__unpack(NULL, len, buf);
    ok(p != NULL && p->origin_request_id[0] == '\0', "prov empty origin");
    faas__provision_request__free_unpacked(p, NULL);
    free(buf);

    is_int(faas_record_pack(&ra, &buf, &len, &err), 0, "record packed");
    r = faas__execution_record__unpack(NULL, len, buf);
    ok(r != NULL, "record unpacks");
    is_int(r->start_type, FAAS__START_TYPE__STOLEN, "record start type");
    is_int(r->status, FAAS__INVOKE_STATUS__TIMEOUT, "record status");
    is_int(r->http_status, 504, "record http status");
    is_int(r->cold_start_us, 30, "record cold start");
    is_str(r->sandbox_id, "s-0123456789abcdef", "record sandbox");
    is_str(r->user, "alice", "record user");
    faas__execution_record__free_unpacked(r, NULL);
    free(buf);

    is_int(faas_invoke_request_frame(&ia, &buf, &len, &err), 0,
           "invoke frame");
    hl = faas_frame_get_len(buf);
    h = faas__agent_hello__unpack(NULL, hl, buf + 4);
    ok(h != NULL, "hello frame first");
    is_str(h->token, "tok", "token");
    faas__agent_hello__free_unpacked(h, NULL);
    is_int(faas_frame_get_len(buf + 4 + hl), len - 8 - hl, "invoke length");
    iq = faas__invoke_request__unpack(NULL, len - 8 - hl, buf + 8 + hl);
    ok(iq != NULL, "invoke request unpacks");
    is_int(iq->deadline_ms, 99, "deadline");
    is_int(iq->event.len, 2, "event bytes");
    faas__invoke_request__free_unpacked(iq, NULL);
    free(buf);

    ia.token = NULL;
    faas_invoke_request_frame(&ia, &buf, &len, &err);
    is_int(faas_frame_get_len(buf), len - 4, "no token: one frame");
    free(buf);

    resp.status = FAAS__INVOKE_STATUS__SANDBOX_GONE;
    resp.request_id = "r";
    len = faas__invoke_response__pack(&resp, rbuf);
    rp = faas__invoke_response__unpack(NULL, len, rbuf);
    ok(rp != NULL && rp->status == FAAS__INVOKE_STATUS__SANDBOX_GONE,
       "response unpacks");
    faas__invoke_response__free_unpacked(rp, NULL);
    rbuf[0] = 0xff;
    rbuf[1] = 0xff;
    ok(faas__invoke_response__unpack(NULL, 2, rbuf) == NULL,
       "garbage response refused");
}


static void
test_answer(void)
{
    ok(!faas_answer_status_ok(101) && !faas_answer_status_ok(199)
       && faas_answer_status_ok(200) && faas_answer_status_ok(599)
       && !faas_answer_status_ok(600), "statuses 200-599 only");
    ok(faas_answer_header_valid("X-Ok", "a\tb"), "token name, HTAB value");
    ok(!faas_answer_header_valid("X Sp", "1")
       && !faas_answer_header_valid("X:C", "1")
       && !faas_answer_header_valid("", "1")
       && !faas_answer_header_valid("X", "a\r\nb")
       && !faas_answer_header_valid("X", "a\x7f"), "bad names and values");
    ok(faas_answer_header_own("Transfer-Encoding", NULL)
       && faas_answer_header_own("proxy-x", NULL)
       && faas_answer_header_own("X-Faas-Start", NULL)
       && faas_answer_header_own("X-Secret", "close, x-secret")
       && !faas_answer_header_own("X-Secreta", "x-secret")
       && !faas_answer_header_own("Set-Cookie", NULL), "framing headers");
}


static void
cookie_is(const char *in, const char *want, const char *what)
{
    char    out[512];
    ssize_t n = faas_cookie_scope(in, strlen(in), "/fn/f", 5, out);

    if (want == NULL) {
        ok(n == -1, "%s: dropped", what);
        return;
    }
    ok(n >= 0 && strcmp(out, want) == 0, "%s: \"%s\"", what,
       n >= 0 ? out : "(dropped)");
}


static void
test_cookie(void)
{
    cookie_is("a=1", "a=1; Path=/fn/f/", "no Path");
    cookie_is("a=1; Path=/", "a=1; Path=/fn/f/", "Path=/");
    cookie_is("a=1; path=/x; Secure", "a=1; Secure; Path=/fn/f/x",
              "Path=/x, attributes kept");
    cookie_is("a=1; Path=/fn/f", "a=1; Path=/fn/f", "Path=prefix kept");
    cookie_is("a=1; Path=/fn/f/y", "a=1; Path=/fn/f/y", "below kept");
    cookie_is("a=1; Path=/fn/fg", "a=1; Path=/fn/f/fn/fg",
              "another function's prefix");
    cookie_is("a=1; Path=rel", "a=1; Path=/fn/f/", "relative Path");
    cookie_is("a=1; Path=/p; Path=/q", "a=1; Path=/fn/f/q", "last Path");
    cookie_is("a=1; Domain=example.com", NULL, "Domain");
    cookie_is("a=1;  dOmAiN =", NULL, "Domain in any case, empty");
    cookie_is("a=1; Domainx=1", "a=1; Domainx=1; Path=/fn/f/",
              "not the Domain attribute");
}


static void
test_trace(void)
{
    const char *client =
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    char        a[FAAS_TRACEPARENT_LEN + 1], b[FAAS_TRACEPARENT_LEN + 1];

    is_int(faas_traceparent_make(client, strlen(client), a, NULL), 0,
           "a client's traceparent continued");
    ok(faas_traceparent_valid(a, strlen(a)), "... valid");
    ok(memcmp(a, client, 36) == 0, "... same version and trace id");
    ok(strcmp(a + 53, "00") == 0, "... same flags");
    ok(memcmp(a + 36, client + 36, 16) != 0, "... a new parent id");

    is_int(faas_traceparent_make("garbage", 7, a, NULL), 0,
           "a malformed one replaced");
    ok(faas_traceparent_valid(a, strlen(a)), "... by a valid one");
    ok(memcmp(a + 3, client + 3, 32) != 0, "... a new trace id");
    ok(strcmp(a + 53, "01") == 0, "... sampled");

    is_int(faas_traceparent_make(NULL, 0, b, NULL), 0, "none: one started");
    ok(faas_traceparent_valid(b, strlen(b)), "... valid");
    ok(memcmp(a + 3, b + 3, 32) != 0, "... each trace its own id");
}


int
main(void)
{
    test_partition();
    test_reqid();
    test_trace();
    test_event();
    test_event_with();
    test_records();
    test_answer();
    test_cookie();
    return done_testing();
}

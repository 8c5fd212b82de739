/* The protocol library: ids, Redis keys, idle entries, status names. */
#include <stdlib.h>
#include <string.h>

#include "entry.h"
#include "faas.pb-c.h"
#include "keys.h"
#include "status.h"
#include "tap.h"


static void
test_ids(void)
{
    char buf[FAAS_KEY_MAX];

    ok(faas_name_valid("hello", 5), "name ok");
    ok(faas_name_valid("a-1", 3), "name with dash and digit");
    ok(!faas_name_valid("", 0), "empty name");
    ok(!faas_name_valid("1abc", 4), "name starting with a digit");
    ok(!faas_name_valid("Abc", 3), "upper case");
    ok(!faas_name_valid("a/b", 3), "slash");
    ok(!faas_name_valid("a.b", 3), "dot");
    memset(buf, 'a', 64);
    ok(faas_name_valid(buf, 63), "63 chars ok");
    ok(!faas_name_valid(buf, 64), "64 chars too long");

    ok(faas_sbxid_valid("s-0123456789abcdef", 18), "sandbox id ok");
    ok(!faas_sbxid_valid("s-0123456789ABCDEF", 18), "upper hex");
    ok(!faas_sbxid_valid("x-0123456789abcdef", 18), "bad prefix");
    ok(!faas_sbxid_valid("s-0123456789abcde", 17), "short");
    ok(faas_request_id_valid("0123456789abcdef0123456789abcdef", 32),
       "request id ok");
    ok(!faas_request_id_valid("0123456789abcdef0123456789abcdeg", 32),
       "request id bad char");
    ok(!faas_sbxid_valid("s-0123456789abcdef0", 19), "long");

    ok(!faas_version_valid(0), "version 0");
    ok(faas_version_valid(1), "version 1");
    ok(faas_version_valid(4294967295ULL), "largest version");
    ok(!faas_version_valid(4294967296ULL), "version past 32 bits");

    ok(faas_rid_valid("hello@3", 7), "rid ok");
    ok(faas_rid_valid("a-1@4294967295", 14), "largest version in a rid");
    ok(!faas_rid_valid("a-1@4294967296", 14), "rid version past 32 bits");
    ok(!faas_rid_valid("hello@0", 7), "rid version 0");
    ok(!faas_rid_valid("hello@03", 8), "rid version with a leading zero");
    ok(!faas_rid_valid("hello@", 6), "rid without a version");
    ok(!faas_rid_valid("hello", 5), "rid without '@'");
    ok(!faas_rid_valid("Hello@1", 7), "rid with a bad name");
    ok(!faas_rid_valid("hello@1x", 8), "rid version not a number");
    ok(!faas_rid_valid("hello@1}", 8), "rid with a brace");

    {
        size_t   nl = 0;
        unsigned v = 0;

        is_int(faas_rid_parse("a-1@4294967295", 14, &nl, &v), 0,
               "rid parsed");
        is_int((long long) nl, 3, "rid name length");
        ok(v == 4294967295U, "rid version");
        is_int(faas_rid_parse("hello@03", 8, &nl, &v), -1,
               "an invalid rid is not parsed");
    }
}


static void
test_subject(void)
{
    char buf[FAAS_SUBJECT_MAX + 1];

    ok(faas_subject_valid("alice", 5), "subject ok");
    ok(faas_subject_valid("user@example.com", 16), "an email address");
    ok(faas_subject_valid("a.b_c@d:e-F9", 12), "every allowed sign");
    ok(!faas_subject_valid("", 0), "empty subject");
    ok(!faas_subject_valid("bob ", 4), "trailing space");
    ok(!faas_subject_valid(" bob", 4), "leading space");
    ok(!faas_subject_valid("a\r\nX-Faas-User: admin", 22), "CR LF");
    ok(!faas_subject_valid("a\0b", 3), "NUL");
    ok(!faas_subject_valid("a\tb", 3), "tab");
    ok(!faas_subject_valid("auth0|x", 7), "'|'");
    ok(!faas_subject_valid("caf\xc3\xa9", 5), "non-ASCII");
    memset(buf, 'a', sizeof(buf));
    ok(faas_subject_valid(buf, FAAS_SUBJECT_MAX), "128 characters");
    ok(!faas_subject_valid(buf, FAAS_SUBJECT_MAX + 1), "129 characters");
}


static void
test_status(void)
{
    const ProtobufCEnumDescriptor *d = &faas__invoke_status__descriptor;

    is_str(faas_status_name(FAAS__INVOKE_STATUS__OK), "OK", "OK");
    is_str(faas_status_name(FAAS__INVOKE_STATUS__FUNCTION_ERROR),
           "FUNCTION_ERROR", "FUNCTION_ERROR");
    is_str(faas_status_name(FAAS__INVOKE_STATUS__AGENT_DRAINING),
           "AGENT_DRAINING", "AGENT_DRAINING");
    is_str(faas_status_name(FAAS__INVOKE_STATUS__SANDBOX_BUSY),
           "SANDBOX_BUSY", "SANDBOX_BUSY");
    is_str(faas_status_name(99), "UNKNOWN", "a status past the table");

    /* Every value faas.proto defines has its own name here. */
    for (unsigned i = 0; i < d->n_values; i++) {
        const ProtobufCEnumValue *v = &d->values[i];
        is_str(faas_status_name((unsigned) v->value), v->name, "%s", v->name);
    }
}


static void
test_keys(void)
{
    char buf[FAAS_KEY_MAX], small[8];

    is_int(faas_rid_format(buf, sizeof(buf), "hello", 5, 3), 7, "rid length");
    is_str(buf, "hello@3", "rid");
    faas_key_rev(buf, sizeof(buf), "hello@3", 7);
    is_str(buf, "faas:rev:{hello@3}", "revision key");
    faas_key_rev_match(buf, sizeof(buf), "hello", 5);
    is_str(buf, "faas:rev:{hello@*}", "revision key pattern of a function");
    is_int(faas_key_rev(small, sizeof(small), "hello@3", 7), -1,
           "too small a buffer for a revision key");
    faas_key_idle(buf, sizeof(buf), "hello@3", 7);
    is_str(buf, "faas:idle:{hello@3}", "idle key");
    faas_key_count(buf, sizeof(buf), "hello@3", 7);
    is_str(buf, "faas:count:{hello@3}", "count key");
    faas_key_gone(buf, sizeof(buf), "hello@3", 7);
    is_str(buf, "faas:gone:{hello@3}", "gone key");
    faas_key_err(buf, sizeof(buf), "hello@3", 7,
                 "0123456789abcdef0123456789abcdef");
    is_str(buf, "faas:err:{hello@3}:0123456789abcdef0123456789abcdef",
           "error key");
    faas_key_prov_queue(buf, sizeof(buf), 17);
    is_str(buf, "faas:prov:q:17", "provision queue key");
    faas_key_fn(buf, sizeof(buf), "hello", 5);
    is_str(buf, "faas:fn:hello", "function key");
    is_int(faas_key_idle(small, sizeof(small), "hello@3", 7), -1,
           "too small a buffer is refused");
    faas_key_prov_lease(buf, sizeof(buf), 5);
    is_str(buf, "faas:prov:lease:5", "lease key");
    faas_key_prov_work(buf, sizeof(buf), "host-a");
    is_str(buf, "faas:prov:work:host-a", "processing list key");
    is_int(faas_key_prov_work(small, sizeof(small), "host-a"), -1,
           "too small a buffer for a work key");
    faas_key_prov_sbx(buf, sizeof(buf), "host-a");
    is_str(buf, "faas:prov:sbx:host-a", "host sandboxes key");
    is_int(faas_key_prov_sbx(small, sizeof(small), "host-a"), -1,
           "too small a buffer for a host sandboxes key");
    is_str(FAAS_KEY_FN_MATCH, "faas:fn:*", "function key pattern");
    is_str(FAAS_KEY_IDLE_MATCH, "faas:idle:*", "idle key pattern");
}


static void
test_entry(void)
{
    faas_entry_t e;
    faas_error_t err;
    char         buf[FAAS_ENTRY_MAX], reason[FAAS_REASON_MAX];
    const char  *rid = "0123456789abcdef0123456789abcdef";
    const char  *s;
    size_t       n;

#define PARSE(str) faas_entry_parse((str), strlen(str), &e, &err)

    s = "s-0123456789abcdef|unix:/run/faas/agent.sock|-";
    is_int(PARSE(s), 0, "unix entry parses");
    is_str(e.sandbox_id, "s-0123456789abcdef", "sandbox id");
    is_int(e.type, FAAS_ENDPOINT_UNIX, "unix endpoint");
    is_str(e.path, "/run/faas/agent.sock", "socket path");
    is_str(e.endpoint, "unix:/run/faas/agent.sock", "endpoint kept");
    is_str(e.origin, "", "no origin");
    is_int(faas_entry_start_type(&e, 0), FAAS_START_WARM, "LPOP: warm");
    is_int(faas_entry_start_type(&e, 1), FAAS_START_STOLEN,
           "BLPOP of a returned sandbox (no origin): stolen");

    s = "s-0123456789abcdef|tcp:10.0.0.5:7070|0123456789abcdef0123456789abcdef";
    is_int(PARSE(s), 0, "tcp entry parses");
    is_int(e.type, FAAS_ENDPOINT_TCP, "tcp endpoint");
    is_str(e.host, "10.0.0.5", "host");
    is_int(e.port, 7070, "port");
    is_str(e.origin, rid, "origin");
    is_int(faas_entry_start_type(&e, 1), FAAS_START_COLD,
           "BLPOP of a fresh sandbox (an origin): cold");
    is_int(faas_entry_start_type(&e, 0), FAAS_START_WARM,
           "LPOP of a fresh sandbox: warm (nothing waited for)");
    is_int(PARSE("s-0123456789abcdef|tcp:[::1]:80|-"), 0, "tcp v6 parses");
    is_str(e.host, "::1", "v6 host without brackets");

    is_int(PARSE("s-0123456789abcdef"), -1, "no bar");
    is_str(err.msg, "entry without '|'", "no bar: message");
    is_int(PARSE("s-0123|unix:/x|-"), -1, "bad sandbox id");
    is_int(PARSE("s-0123456789abcdef|unix:rel|-"), -1, "relative unix path");
    is_int(PARSE("s-0123456789abcdef|tcp:host|-"), -1, "tcp without port");
    is_int(PARSE("s-0123456789abcdef|tcp:host:0|-"), -1, "port 0");
    is_int(PARSE("s-0123456789abcdef|tcp:host:70000|-"), -1, "port too big");
    is_int(PARSE("s-0123456789abcdef|tcp:host:8x|-"), -1, "port not a number");
    is_int(PARSE("s-0123456789abcdef|http://x|-"), -1, "unknown endpoint");
    is_int(PARSE("s-0123456789abcdef|unix:/x|abc"), -1, "bad origin");
    is_int(PARSE("s-0123456789abcdef|unix:/x"), -1, "missing origin");

    n = (size_t) faas_entry_format(buf, sizeof(buf), "s-0123456789abcdef",
                                   "unix:/a.sock", NULL);
    is_str(buf, "s-0123456789abcdef|unix:/a.sock|-", "format without origin");
    is_int(n, strlen(buf), "format length");
    faas_entry_format(buf, sizeof(buf), "s-0123456789abcdef", "unix:/a.sock",
                      rid);
    is_int(PARSE(buf), 0, "formatted entry parses back");
    is_str(e.origin, rid, "origin round trip");

    is_str(faas_start_type_name(FAAS_START_COLD), "cold", "cold name");
    is_str(faas_start_type_name(FAAS_START_STOLEN), "stolen", "stolen name");
    is_str(faas_start_type_name(0), "-", "unknown name");

    n = faas_reason_clean("no code\n\x01", 9, reason);
    is_str(reason, "no code", "reason: control bytes dropped at the end");
    is_int(n, 7, "reason length");
    faas_reason_clean("a\tb", 3, reason);
    is_str(reason, "a b", "reason: tab becomes a space");
    faas_reason_clean("", 0, reason);
    is_str(reason, "cold start failed", "empty reason");
#undef PARSE
}


static void
test_traceparent(void)
{
#define TP(s) faas_traceparent_valid(s, strlen(s))
    ok(TP("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
       "traceparent ok");
    ok(TP("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
       "unsampled traceparent ok");
    ok(!TP("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
       "upper hex trace id");
    ok(!TP("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
       "all-zero trace id");
    ok(!TP("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
       "all-zero parent id");
    ok(!TP("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
       "version ff");
    ok(!TP("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"),
       "version 00 with a fifth field");
    ok(TP("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"),
       "a later version may add fields");
    ok(!TP("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"),
       "a later version's fifth field starts with '-'");
    ok(!TP("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"),
       "short");
    ok(!TP("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
       "bad separator");
    ok(!faas_traceparent_valid(NULL, 0), "absent");
#undef TP
}


int
main(void)
{
    test_ids();
    test_traceparent();
    test_subject();
    test_keys();
    test_entry();
    test_status();
    return done_testing();
}

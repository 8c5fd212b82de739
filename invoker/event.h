/*
 * The Lambda-style event handed to a function (docs/DESIGN.md section 5): the
 * function-URL v2.0 fields and the REST-proxy v1 fields in one JSON object.
 */
#ifndef FAAS_EVENT_H
#define FAAS_EVENT_H

#include <stddef.h>

#include "error.h"

typedef struct faas_event_header_s {
    const char *name;
    size_t      name_len;
    const char *value;
    size_t      value_len;
} faas_event_header_t;

typedef struct faas_event_req_s {
    const char                *method;      /* "GET" */
    size_t                     method_len;
    const char                *path;        /* path below /fn/<name>, "/" */
    size_t                     path_len;
    const char                *query;       /* raw query, no '?' */
    size_t                     query_len;
    const faas_event_header_t *headers;
    size_t                     nheaders;
    const char                *source_ip;
    const char                *protocol;    /* "HTTP/1.1" */
    const char                *request_id;
    const char                *function;
    const unsigned char       *body;
    size_t                     body_len;
    unsigned long long         time_ms;     /* request time, epoch ms */
} faas_event_req_t;

/*
 * Builds the event JSON. Header names are lowercased; repeated headers are
 * joined with "," in `headers` and kept apart in `multiValueHeaders`; the
 * query is split and percent-decoded the same way. A body that is valid
 * UTF-8 is passed as text, anything else base64-encoded with
 * isBase64Encoded true. Returns a malloc'd NUL-terminated string (caller
 * frees) and its length in *len, or NULL with err set.
 */
char *faas_event_build(const faas_event_req_t *req, size_t *len,
                       faas_error_t *err);

/* Where the event is written: alloc(data, size) gives a block or NULL,
 * free(data, p) gives back one alloc gave. */
typedef struct faas_event_alloc_s {
    void  *(*alloc)(void *data, size_t size);
    void   (*free)(void *data, void *p);
    void    *data;
} faas_event_alloc_t;

/*
 * The same, written straight into memory of al (e.g. a request's pool): the
 * first block is sized so that the event rarely outgrows it, a block it
 * does outgrow is given back. The result is al's, NUL-terminated.
 */
char *faas_event_build_with(const faas_event_req_t *req,
                            const faas_event_alloc_t *al, size_t *len,
                            faas_error_t *err);

#endif

/*
 * JWT checks with libjwt 1.10, which verifies the signature but no claim:
 * the header's "alg" must be exactly the configured algorithm (so "none",
 * an HS256 token signed with an RSA public key, or RS512 under RS256 are
 * refused before libjwt sees them), a key is always passed, and the claims
 * are checked here: "exp" is required, "exp" and "nbf" with faas_jwt_leeway,
 * "iss" and "aud" when configured, "sub" is required (it is the user).
 *
 * Also the access handler of `faas_management on` locations (run in the
 * preaccess phase, for subrequests too): a valid token, then X-Faas-User
 * set to its subject for the proxied registry, and X-Faas-Admin: 1 only when
 * the token carries `faas_admin_claim` with the value true. Whatever the
 * client sent under either name is removed.
 */
#include "ngx_http_faas_module.h"

#include <jansson.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>


#define NGX_HTTP_FAAS_JWT_MAX  8192


static ngx_int_t ngx_http_faas_jwt_part(ngx_http_request_t *r, u_char *p,
    size_t len, json_t **out);


ngx_int_t
ngx_http_faas_jwt_check_key(ngx_conf_t *cf, ngx_http_faas_loc_conf_t *flcf)
{
    int          id;
    BIO         *bio;
    ssize_t      n;
    ngx_fd_t     fd;
    ngx_str_t    path;
    EVP_PKEY    *pkey;
    ngx_file_t   file;
    ngx_file_info_t  fi;
    const char  *alg;

    path = flcf->jwt_key_file;

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(path.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "faas_jwt_key: cannot open \"%V\"", &path);
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > 65536)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "faas_jwt_key: \"%V\" is not a key file (too "
                           "large or unreadable)", &path);
        ngx_close_file(fd);
        return NGX_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.fd = fd;
    file.name = path;
    file.log = cf->log;

    flcf->jwt_key.len = (size_t) ngx_file_size(&fi);
    flcf->jwt_key.data = ngx_pnalloc(cf->pool, flcf->jwt_key.len + 1);
    if (flcf->jwt_key.data == NULL) {
        ngx_close_file(fd);
        return NGX_ERROR;
    }

    n = ngx_read_file(&file, flcf->jwt_key.data, flcf->jwt_key.len, 0);
    ngx_close_file(fd);

    if (n != (ssize_t) flcf->jwt_key.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "faas_jwt_key: cannot read \"%V\"", &path);
        return NGX_ERROR;
    }

    flcf->jwt_key.data[n] = '\0';

    alg = jwt_alg_str((jwt_alg_t) flcf->jwt_alg);

    if (alg[0] == 'H') {
        /* the secret is the file's content, without its final newline */
        while (flcf->jwt_key.len
               && (flcf->jwt_key.data[flcf->jwt_key.len - 1] == '\n'
                   || flcf->jwt_key.data[flcf->jwt_key.len - 1] == '\r'))
        {
            flcf->jwt_key.data[--flcf->jwt_key.len] = '\0';
        }

        if (flcf->jwt_key.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "faas_jwt_key: \"%V\" is empty", &path);
            return NGX_ERROR;
        }

        if (ngx_strstr(flcf->jwt_key.data, "-----BEGIN") != NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "faas_jwt_key: \"%V\" holds a PEM key, "
                               "but %s needs a shared secret", &path, alg);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    bio = BIO_new_mem_buf(flcf->jwt_key.data, (int) flcf->jwt_key.len);
    if (bio == NULL) {
        return NGX_ERROR;
    }

    pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);

    if (pkey == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "faas_jwt_key: \"%V\" is not a PEM public key "
                           "(%s needs one)", &path, alg);
        return NGX_ERROR;
    }

    id = EVP_PKEY_base_id(pkey);
    EVP_PKEY_free(pkey);

    if ((alg[0] == 'R' && id != EVP_PKEY_RSA)
        || (alg[0] == 'E' && id != EVP_PKEY_EC))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "faas_jwt_key: \"%V\" is not %s public key, as "
                           "%s needs", &path,
                           alg[0] == 'R' ? "an RSA" : "an EC", alg);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* NGX_OK with the token, NGX_DECLINED without Authorization, NGX_ERROR. */
ngx_int_t
ngx_http_faas_jwt_bearer(ngx_http_request_t *r, ngx_str_t *token)
{
    ngx_table_elt_t  *h;

    h = r->headers_in.authorization;
    if (h == NULL) {
        return NGX_DECLINED;
    }

    if (h->value.len < 8
        || ngx_strncasecmp(h->value.data, (u_char *) "Bearer ", 7) != 0)
    {
        return NGX_ERROR;
    }

    token->data = h->value.data + 7;
    token->len = h->value.len - 7;

    while (token->len && *token->data == ' ') {
        token->data++;
        token->len--;
    }

    return token->len ? NGX_OK : NGX_ERROR;
}


static ngx_int_t
ngx_http_faas_jwt_part(ngx_http_request_t *r, u_char *p, size_t len,
    json_t **out)
{
    ngx_str_t     src, dst;
    json_error_t  jerr;

    src.data = p;
    src.len = len;

    dst.data = ngx_pnalloc(r->pool, ngx_base64_decoded_length(len) + 1);
    if (dst.data == NULL) {
        return NGX_ERROR;
    }

    if (ngx_decode_base64url(&dst, &src) != NGX_OK) {
        return NGX_DECLINED;
    }

    *out = json_loadb((char *) dst.data, dst.len, 0, &jerr);

    if (*out == NULL || !json_is_object(*out)) {
        if (*out) {
            json_decref(*out);
            *out = NULL;
        }
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * NGX_OK with the subject in *sub (from r->pool), NGX_DECLINED with a
 * reason in *why, NGX_ERROR on allocation failures.
 */
static ngx_uint_t
ngx_http_faas_jwt_is(const char *s, ngx_str_t *want)
{
    return s && ngx_strlen(s) == want->len
           && ngx_strncmp(s, want->data, want->len) == 0;
}


/* Whether the aud claim (a string or an array) names want. */
static ngx_uint_t
ngx_http_faas_jwt_audience(json_t *aud, ngx_str_t *want)
{
    size_t   i;
    json_t  *a;

    if (json_is_string(aud)) {
        return ngx_http_faas_jwt_is(json_string_value(aud), want);
    }

    if (json_is_array(aud)) {
        json_array_foreach(aud, i, a) {
            if (ngx_http_faas_jwt_is(json_string_value(a), want)) {
                return 1;
            }
        }
    }

    return 0;
}


/* Checks exp, nbf, iss, aud and sub: NULL, or why the token is refused. */
static const char *
ngx_http_faas_jwt_claims(ngx_http_faas_loc_conf_t *flcf, json_t *claims)
{
    json_t      *v;
    time_t       now;
    const char  *s;

    now = ngx_time();

    v = json_object_get(claims, "exp");
    if (v == NULL || !json_is_number(v)) {
        return "token has no expiry";
    }

    if ((double) now > json_number_value(v) + (double) flcf->jwt_leeway) {
        return "token expired";
    }

    v = json_object_get(claims, "nbf");
    if (v != NULL) {
        if (!json_is_number(v)) {
            return "malformed nbf";
        }

        if (json_number_value(v) > (double) (now + flcf->jwt_leeway)) {
            return "token not yet valid";
        }
    }

    if (flcf->jwt_issuer.len
        && !ngx_http_faas_jwt_is(json_string_value(json_object_get(claims,
                                                   "iss")),
                                 &flcf->jwt_issuer))
    {
        return "wrong token issuer";
    }

    if (flcf->jwt_audience.len
        && !ngx_http_faas_jwt_audience(json_object_get(claims, "aud"),
                                       &flcf->jwt_audience))
    {
        return "wrong token audience";
    }

    v = json_object_get(claims, "sub");
    s = json_string_value(v);
    if (s == NULL || s[0] == '\0') {
        return "token has no subject";
    }

    /* the rule the registry applies to owners (proto/ids.h) */
    if (!faas_subject_valid(s, json_string_length(v))) {
        return "malformed subject (want [A-Za-z0-9._@:-]{1,128})";
    }

    return NULL;
}


ngx_int_t
ngx_http_faas_jwt_verify(ngx_http_request_t *r,
    ngx_http_faas_loc_conf_t *flcf, ngx_str_t *token, ngx_str_t *sub,
    ngx_uint_t *admin, const char **why)
{
    u_char      *p, *dot1, *dot2, *end, *tok;
    jwt_t       *jwt;
    json_t      *hdr, *claims;
    ngx_int_t    rc;
    const char  *alg, *s;

    hdr = NULL;
    claims = NULL;
    jwt = NULL;

    if (flcf->jwt_key.len == 0) {
        *why = "tokens are not accepted here";
        return NGX_DECLINED;
    }

    if (token->len > NGX_HTTP_FAAS_JWT_MAX) {
        *why = "token too long";
        return NGX_DECLINED;
    }

    p = token->data;
    end = p + token->len;

    dot1 = ngx_strlchr(p, end, '.');
    dot2 = dot1 ? ngx_strlchr(dot1 + 1, end, '.') : NULL;

    if (dot1 == NULL || dot2 == NULL || ngx_strlchr(dot2 + 1, end, '.')) {
        *why = "malformed token";
        return NGX_DECLINED;
    }

    rc = ngx_http_faas_jwt_part(r, p, dot1 - p, &hdr);
    if (rc != NGX_OK) {
        *why = "malformed token header";
        return rc == NGX_ERROR ? NGX_ERROR : NGX_DECLINED;
    }

    alg = jwt_alg_str((jwt_alg_t) flcf->jwt_alg);
    s = json_string_value(json_object_get(hdr, "alg"));

    if (s == NULL || ngx_strcmp(s, alg) != 0) {
        *why = "token algorithm not accepted";
        rc = NGX_DECLINED;
        goto done;
    }

    tok = ngx_pnalloc(r->pool, token->len + 1);
    if (tok == NULL) {
        rc = NGX_ERROR;
        goto done;
    }

    ngx_cpystrn(tok, token->data, token->len + 1);

    if (jwt_decode(&jwt, (char *) tok, flcf->jwt_key.data,
                   (int) flcf->jwt_key.len)
        != 0 || jwt == NULL)
    {
        *why = "bad token signature";
        jwt = NULL;
        rc = NGX_DECLINED;
        goto done;
    }

    if (jwt_get_alg(jwt) != (jwt_alg_t) flcf->jwt_alg) {
        *why = "token algorithm not accepted";
        rc = NGX_DECLINED;
        goto done;
    }

    rc = ngx_http_faas_jwt_part(r, dot1 + 1, dot2 - dot1 - 1, &claims);
    if (rc != NGX_OK) {
        *why = "malformed token claims";
        rc = rc == NGX_ERROR ? NGX_ERROR : NGX_DECLINED;
        goto done;
    }

    *why = ngx_http_faas_jwt_claims(flcf, claims);
    if (*why) {
        rc = NGX_DECLINED;
        goto done;
    }

    s = json_string_value(json_object_get(claims, "sub"));

    sub->len = ngx_strlen(s);
    sub->data = ngx_pnalloc(r->pool, sub->len);
    if (sub->data == NULL) {
        rc = NGX_ERROR;
        goto done;
    }

    ngx_memcpy(sub->data, s, sub->len);

    if (admin) {
        *admin = flcf->admin_claim.len
                 && json_is_true(json_object_get(claims,
                                     (char *) flcf->admin_claim.data));
    }

    rc = NGX_OK;

done:

    if (jwt) {
        jwt_free(jwt);
    }

    if (hdr) {
        json_decref(hdr);
    }

    if (claims) {
        json_decref(claims);
    }

    return rc;
}


/* Sets WWW-Authenticate and returns 401. */
ngx_int_t
ngx_http_faas_unauthorized(ngx_http_request_t *r, const char *why)
{
    u_char           *p;
    size_t            len;
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = sizeof("Bearer realm=\"faas\", error=\"invalid_token\", "
                 "error_description=\"\"") + (why ? ngx_strlen(why) : 0);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "WWW-Authenticate");
    h->value.data = p;

    if (why) {
        p = ngx_sprintf(p, "Bearer realm=\"faas\", error=\"invalid_token\", "
                        "error_description=\"%s\"", why);
    } else {
        p = ngx_cpymem(p, "Bearer realm=\"faas\"",
                       sizeof("Bearer realm=\"faas\"") - 1);
    }

    h->value.len = p - h->value.data;
    r->headers_out.www_authenticate = h;

    return NGX_HTTP_UNAUTHORIZED;
}


static ngx_uint_t
ngx_http_faas_is_header(ngx_table_elt_t *h, const char *name, size_t len)
{
    return h->key.len == len
           && ngx_strncasecmp(h->key.data, (u_char *) name, len) == 0;
}


static ngx_int_t
ngx_http_faas_push_header(ngx_http_request_t *r, char *name, size_t len,
    char *lowcase, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(h, sizeof(ngx_table_elt_t));
    h->key.len = len;
    h->key.data = (u_char *) name;
    h->lowcase_key = (u_char *) lowcase;
    h->hash = ngx_hash_key(h->lowcase_key, h->key.len);
    h->value = *value;

    return NGX_OK;
}


/*
 * Whatever the client sent as X-Faas-User or X-Faas-Admin is replaced by
 * sub and, for an admin token, "1". The list is
 * rebuilt rather than edited in place: a subrequest's headers_in is a copy
 * of its parent's, whose list parts it shares, so a header pushed onto it
 * could land in the parent's part and be missed by the subrequest.
 */
static ngx_int_t
ngx_http_faas_set_user(ngx_http_request_t *r, ngx_str_t *sub,
    ngx_uint_t admin)
{
    ngx_uint_t        i;
    ngx_str_t         one = ngx_string("1");
    ngx_list_t        old;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *copy;

    old = r->headers_in.headers;

    if (ngx_list_init(&r->headers_in.headers, r->pool, 20,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    part = &old.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {
        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }
            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (ngx_http_faas_is_header(&h[i], "X-Faas-User",
                                    sizeof("X-Faas-User") - 1)
            || ngx_http_faas_is_header(&h[i], "X-Faas-Admin",
                                       sizeof("X-Faas-Admin") - 1))
        {
            continue;
        }

        copy = ngx_list_push(&r->headers_in.headers);
        if (copy == NULL) {
            return NGX_ERROR;
        }
        *copy = h[i];
    }

    if (ngx_http_faas_push_header(r, "X-Faas-User",
                                  sizeof("X-Faas-User") - 1, "x-faas-user",
                                  sub)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (admin) {
        return ngx_http_faas_push_header(r, "X-Faas-Admin",
                                         sizeof("X-Faas-Admin") - 1,
                                         "x-faas-admin", &one);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_faas_access_handler(ngx_http_request_t *r)
{
    ngx_str_t                  token, sub;
    ngx_int_t                  rc;
    ngx_uint_t                 admin;
    const char                *why;
    ngx_http_faas_ctx_t       *ctx;
    ngx_http_faas_loc_conf_t  *flcf;

    flcf = ngx_http_get_module_loc_conf(r, ngx_http_faas_module);

    if (!flcf->management) {
        return NGX_DECLINED;
    }

    rc = ngx_http_faas_jwt_bearer(r, &token);

    if (rc == NGX_DECLINED) {
        return ngx_http_faas_unauthorized(r, NULL);
    }

    if (rc != NGX_OK) {
        return ngx_http_faas_unauthorized(r, "malformed Authorization");
    }

    why = NULL;
    admin = 0;
    rc = ngx_http_faas_jwt_verify(r, flcf, &token, &sub, &admin, &why);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "faas: management request refused: %s", why);
        return ngx_http_faas_unauthorized(r, why);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_faas_module);
    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_faas_ctx_t));
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        ngx_http_set_ctx(r, ctx, ngx_http_faas_module);
    }

    ctx->user = sub;

    if (ngx_http_faas_set_user(r, &sub, admin) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_OK;
}
